package kafkahash

import "testing"

// TestMatchesJava checks values Java computes: "hello".hashCode(),
// "polygenelubricants".hashCode() == Integer.MIN_VALUE (Utils.abs → 0) and
// a surrogate pair hashed as two UTF-16 units.
func TestMatchesJava(t *testing.T) {
	for _, c := range []struct {
		key  string
		hash int32
		part int32
	}{
		{"", 0, 0},
		{"hello", 99162322, 22},
		{"polygenelubricants", -1 << 31, 0},
		{"\U0001F600", 0xD83D*31 + 0xDE00, 49},
	} {
		if h := JavaStringHashCode(c.key); h != c.hash {
			t.Errorf("hashCode(%q) = %d, want %d", c.key, h, c.hash)
		}
		if p := PartitionFor(c.key, 50); p != c.part {
			t.Errorf("PartitionFor(%q, 50) = %d, want %d", c.key, p, c.part)
		}
	}
}
