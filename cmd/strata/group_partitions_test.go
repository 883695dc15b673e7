package main

import (
	"errors"
	"maps"
	"strings"
	"testing"
)

func TestGroupParseTopicSpecs(t *testing.T) {
	all := map[int32]bool(nil)
	for _, tc := range []struct {
		specs []string
		want  topicSelection
		err   string
	}{
		{[]string{"orders"}, topicSelection{"orders": all}, ""},
		{[]string{"orders:0,2"}, topicSelection{"orders": {0: true, 2: true}}, ""},
		{[]string{"orders:2", "orders:0, 2"}, topicSelection{"orders": {0: true, 2: true}}, ""},
		{[]string{"orders:1", "orders"}, topicSelection{"orders": all}, ""},
		{[]string{"orders", "orders:1"}, topicSelection{"orders": all}, ""},
		{[]string{"a", "b:3"}, topicSelection{"a": all, "b": {3: true}}, ""},
		{[]string{""}, nil, `invalid --topic ""`},
		{[]string{":1"}, nil, `invalid --topic ":1"`},
		{[]string{"a:"}, nil, `partition "" is not a number`},
		{[]string{"a:1,,2"}, nil, `partition "" is not a number`},
		{[]string{"a:-1"}, nil, `partition "-1" is not a number >= 0`},
		{[]string{"a:99999999999"}, nil, `partition "99999999999"`},
		{[]string{"a:1:2"}, nil, `partition "1:2"`},
	} {
		got, err := parseTopicSpecs(tc.specs)
		if tc.err != "" {
			var ue usageError
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.As(err, &ue) {
				t.Errorf("%q: err %v, want usage error %q", tc.specs, err, tc.err)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("%q: %v, %v; want %v", tc.specs, got, err, tc.want)
			continue
		}
		for topic, ps := range tc.want {
			g, ok := got[topic]
			if !ok || (ps == nil) != (g == nil) || !maps.Equal(g, ps) {
				t.Errorf("%q: %s = %v, want %v", tc.specs, topic, g, ps)
			}
		}
	}
}

// FuzzGroupTopicSpecs: any --topic text gives a selection or a usage error,
// never a panic, and a selection only names non-empty topics and partitions
// >= 0.
func FuzzGroupTopicSpecs(f *testing.F) {
	for _, s := range []string{"orders", "orders:0,1", "a:", ":", "a:-1", "a:1,,2", "a:2147483648", "é:0", "a: 1 ,2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		sel, err := parseTopicSpecs([]string{spec})
		if err != nil {
			var ue usageError
			if !errors.As(err, &ue) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("%q: error %q is not a one-line usage error", spec, err)
			}
			return
		}
		for topic, ps := range sel {
			if topic == "" || strings.Contains(topic, ":") {
				t.Fatalf("%q: topic %q", spec, topic)
			}
			for p := range ps {
				if p < 0 {
					t.Fatalf("%q: partition %d", spec, p)
				}
			}
		}
	})
}
