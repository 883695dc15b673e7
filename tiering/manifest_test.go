package tiering

import (
	"errors"
	"fmt"
	"testing"
)

func seg(id string, base, last int64) RemoteSegment {
	return RemoteSegment{ID: id, BaseOffset: base, LastOffset: last, Size: 100, MaxTimestamp: last}
}

func TestManifestCopyStateMachine(t *testing.T) {
	m := NewManifest("t", 0)
	if m.StartOffset() != -1 || m.EndOffset() != -1 || m.CopiedUpTo() != 0 {
		t.Fatalf("empty manifest: start %d end %d copied %d", m.StartOffset(), m.EndOffset(), m.CopiedUpTo())
	}
	if err := m.Begin(seg("a", 0, 99)); err != nil {
		t.Fatal(err)
	}
	// Started is not readable, but counts as copied so nobody copies it twice.
	if _, ok := m.Find(10); ok || m.CopiedUpTo() != 100 || m.EndOffset() != -1 {
		t.Fatalf("started entry readable=%v copied=%d end=%d", ok, m.CopiedUpTo(), m.EndOffset())
	}
	if err := m.Begin(seg("dup", 50, 150)); err == nil {
		t.Fatal("overlapping entry accepted")
	}
	if err := m.Finish("a"); err != nil {
		t.Fatal(err)
	}
	if err := m.Finish("a"); err == nil {
		t.Fatal("finishing twice accepted")
	}
	m.Begin(seg("b", 100, 199))
	m.Finish("b")
	if s, ok := m.Find(150); !ok || s.ID != "b" {
		t.Fatalf("find 150: %v %v", s, ok)
	}
	if m.StartOffset() != 0 || m.EndOffset() != 200 {
		t.Fatalf("start %d end %d", m.StartOffset(), m.EndOffset())
	}
	// A crashed copy is replaced: the old entry goes to delete_started and a
	// new copy of the same offsets can begin.
	m.Begin(seg("c", 200, 299))
	if err := m.StartDelete("c"); err != nil {
		t.Fatal(err)
	}
	if err := m.Begin(seg("c2", 200, 299)); err != nil {
		t.Fatalf("replacing a deleted copy: %v", err)
	}
	m.Drop("c")
	if len(m.Segments) != 3 {
		t.Fatalf("entries after drop: %+v", m.Segments)
	}
	// Retention: the log start moves first; entries below it are unreadable.
	m.LogStartOffset = 100
	if _, ok := m.Find(50); ok || m.StartOffset() != 100 {
		t.Fatalf("after log start moved: start %d", m.StartOffset())
	}
}

func TestManifestRoundTripWithParts(t *testing.T) {
	m := NewManifest("orders", 3)
	for i := int64(0); i < 25; i++ {
		id := fmt.Sprintf("s%d", i)
		m.Begin(seg(id, i*10, i*10+9))
		m.Finish(id)
	}
	m.Begin(seg("open", 250, 259))
	n := m.Spillable(5)
	if n != 21 {
		t.Fatalf("spillable %d, want 21 (keep 5, all finished)", n)
	}
	part := m.Segments[m.Spilled : m.Spilled+n]
	pb, err := EncodePart(part)
	if err != nil {
		t.Fatal(err)
	}
	ref := ManifestPart{Key: "p1", BaseOffset: part[0].BaseOffset, LastOffset: part[n-1].LastOffset, Count: n}
	m.Parts = append(m.Parts, ref)
	m.Spilled += n
	m.Version = 7
	hb, err := m.EncodeHead()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeHead(hb)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Segments) != 5 {
		t.Fatalf("head holds %d entries, want 5", len(got.Segments))
	}
	segs, err := DecodePart(pb, ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.AttachParts([][]RemoteSegment{segs}); err != nil {
		t.Fatal(err)
	}
	if len(got.Segments) != 26 || got.Spilled != 21 || got.Version != 7 {
		t.Fatalf("reassembled: %d entries, %d spilled, version %d", len(got.Segments), got.Spilled, got.Version)
	}
	if s, ok := got.Find(123); !ok || s.ID != "s12" {
		t.Fatalf("find in a part: %v %v", s, ok)
	}
	// Spilled entries are immutable.
	if err := got.StartDelete("s3"); err == nil {
		t.Fatal("changed a spilled entry")
	}
	// A part that does not match its reference is corrupt.
	if _, err := DecodePart(pb, ManifestPart{Key: "p1", BaseOffset: 0, LastOffset: 5, Count: n}); !errors.Is(err, ErrCorruptManifest) {
		t.Fatalf("mismatched part: %v", err)
	}
}

func TestDecodeHeadRejectsOverlaps(t *testing.T) {
	bad := `{"format":1,"version":1,"topic":"t","partition":0,"log_start_offset":0,"segments":[
	 {"id":"a","base_offset":0,"last_offset":10,"state":"copy_finished"},
	 {"id":"b","base_offset":5,"last_offset":20,"state":"copy_finished"}]}`
	if _, err := DecodeHead([]byte(bad)); !errors.Is(err, ErrCorruptManifest) {
		t.Fatalf("overlapping live entries: %v", err)
	}
}

func FuzzDecodeManifest(f *testing.F) {
	m := NewManifest("t", 1)
	m.Begin(seg("a", 0, 9))
	m.Finish("a")
	hb, _ := m.EncodeHead()
	f.Add(hb)
	f.Add([]byte(`{"format":1,"segments":[{"id":"x","base_offset":3,"last_offset":1,"state":"copy_started"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeHead(b)
		if err != nil {
			return
		}
		// Whatever decodes must be usable without panics and re-encode.
		m.Find(5)
		m.StartOffset()
		m.CopiedUpTo()
		if _, err := m.EncodeHead(); err != nil {
			t.Fatal(err)
		}
		pb, _ := EncodePart(m.Segments)
		if len(m.Segments) > 0 {
			DecodePart(pb, ManifestPart{Count: len(m.Segments), BaseOffset: m.Segments[0].BaseOffset, LastOffset: m.Segments[len(m.Segments)-1].LastOffset})
		}
	})
}
