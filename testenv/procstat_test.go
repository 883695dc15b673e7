package testenv

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestProcStatParse(t *testing.T) {
	for _, tc := range []struct {
		line  string
		state byte
		cpu   time.Duration
		err   string
	}{
		{"21186 (cat) R 21125 21125 13912 0 -1 4194304 101 0 0 0 7 3 0 0 20 0 1 0 278939 3133440 418", 'R', 100 * time.Millisecond, ""},
		// comm may hold spaces and parentheses: fields count from the last ')'.
		{"42 (a) b (c)) T 1 1 1 0 -1 0 0 0 0 0 250 50 0 0 20 0 1 0", 'T', 3 * time.Second, ""},
		{"42 (x) S 1 1 1 0 -1 0 0 0 0 0 0", 0, 0, "12 fields"},
		{"42 x S 1 1 1 0 -1 0 0 0 0 0 0 0 0", 0, 0, "no ')'"},
		{"42 (x) SS 1 1 1 0 -1 0 0 0 0 0 1 1", 0, 0, "not one letter"},
		{"42 (x) S 1 1 1 0 -1 0 0 0 0 0 -5 1", 0, 0, "not a tick count"},
		{"42 (x) S 1 1 1 0 -1 0 0 0 0 0 922337203685 922337203685", 0, 0, "out of range"},
	} {
		st, err := parseProcStat([]byte(tc.line))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.line, err, tc.err)
			}
			continue
		}
		if err != nil || st.State != tc.state || st.CPU != tc.cpu {
			t.Errorf("%q: got %+v, %v; want %c %v", tc.line, st, err, tc.state, tc.cpu)
		}
	}
	// Our own process is running or sleeping, and has run.
	st, err := ReadProcStat(os.Getpid())
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	if !strings.ContainsRune("RS", rune(st.State)) {
		t.Errorf("own state %c", st.State)
	}
}

// FuzzProcStat: any bytes give a stat or an error, never a panic, and a
// parsed CPU time is never negative.
func FuzzProcStat(f *testing.F) {
	f.Add([]byte("21186 (cat) R 21125 21125 13912 0 -1 4194304 101 0 0 0 7 3 0 0 20 0 1 0 278939"))
	f.Add([]byte("1 ((sd-pam)) S 0 0 0 0 -1 0 0 0 0 0 9223372036854775807 1"))
	f.Add([]byte(")"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseProcStat(b)
		if err == nil && st.CPU < 0 {
			t.Fatalf("negative CPU %v from %q", st.CPU, b)
		}
	})
}
