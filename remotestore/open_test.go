package remotestore_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-broker/strata/remotestore"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want remotestore.Location
	}{
		{"file:///var/lib/strata/remote", remotestore.Location{Dir: "/var/lib/strata/remote"}},
		{"file://localhost/tmp/x/", remotestore.Location{Dir: "/tmp/x"}},
		{"s3://my-bucket", remotestore.Location{S3: remotestore.S3Options{Bucket: "my-bucket"}}},
		{"s3://my-bucket/", remotestore.Location{S3: remotestore.S3Options{Bucket: "my-bucket"}}},
		{"s3://my-bucket/prod/a/?region=eu-west-1", remotestore.Location{
			S3: remotestore.S3Options{Bucket: "my-bucket", Region: "eu-west-1"}, Prefix: "prod/a"}},
		{"s3://b.c-d/p?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true", remotestore.Location{
			S3:     remotestore.S3Options{Bucket: "b.c-d", Endpoint: "http://127.0.0.1:9000", Region: "us-east-1", PathStyle: true},
			Prefix: "p"}},
		{"s3://bkt?endpoint=https%3A%2F%2Fminio.example%3A9000&path_style=0", remotestore.Location{
			S3: remotestore.S3Options{Bucket: "bkt", Endpoint: "https://minio.example:9000"}}},
	} {
		got, err := remotestore.ParseURL(tc.url)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.url, err)
			continue
		}
		if got.Dir != tc.want.Dir || got.Prefix != tc.want.Prefix || got.S3.Bucket != tc.want.S3.Bucket ||
			got.S3.Endpoint != tc.want.S3.Endpoint || got.S3.Region != tc.want.S3.Region || got.S3.PathStyle != tc.want.S3.PathStyle {
			t.Errorf("ParseURL(%q) = %+v, want %+v", tc.url, got, tc.want)
		}
	}
}

func TestParseURLErrors(t *testing.T) {
	for _, tc := range []struct{ url, why string }{
		{"", "no scheme"},
		{"/var/lib/strata", "no scheme"},
		{"gs://bucket", "unknown scheme"},
		{"file://relative/path", "no host"},
		{"file:///", ""},
		{"file:relative", "missing //"},
		{"file:///x?sync=1", "no ?parameters"},
		{"s3://", "no bucket"},
		{"s3:///prefix", "no bucket"},
		{"s3://Bad_Bucket", "not a valid bucket name"},
		{"s3://ab", "not a valid bucket name"},
		{"s3://bucket:9000/p", "not a valid bucket name"},
		{"s3://key:secret@bucket", "credentials do not go in the URL"},
		{"s3://bucket/../x", "prefix"},
		{"s3://bucket/a//b", "prefix"},
		{"s3://bucket?endpiont=http://x", `unknown parameter "endpiont"`},
		{"s3://bucket?region=a&region=b", "given 2 times"},
		{"s3://bucket?path_style=yes", "path_style"},
		{"s3://bucket?endpoint=127.0.0.1:9000", "endpoint"},
		{"s3://bucket?endpoint=ftp://host", "endpoint"},
		{"s3://bucket#frag", "fragment"},
		{"s3://bucket?%zz", ""},
	} {
		_, err := remotestore.ParseURL(tc.url)
		if err == nil {
			t.Errorf("ParseURL(%q) succeeded", tc.url)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "remotestore: bad remote URL") || !strings.Contains(msg, tc.why) || !strings.Contains(msg, "want file:///path or s3://") {
			t.Errorf("ParseURL(%q): %q, want it to mention %q and the accepted forms", tc.url, msg, tc.why)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"file:///var/lib/strata", "s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=r&path_style=true",
		"s3://b/a/../b", "file://host/x", "s3://bucket?%zz", "s3://u:p@bucket", "s3://bucket/a//b/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		loc, err := remotestore.ParseURL(raw)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "remotestore: ") {
				t.Fatalf("error without the package prefix: %v", err)
			}
			return
		}
		switch {
		case loc.Dir != "":
			if loc.S3.Bucket != "" || !filepath.IsAbs(loc.Dir) {
				t.Fatalf("file location %+v", loc)
			}
		default:
			opts := loc.S3
			opts.EnsureDefaults()
			if err := opts.Validate(); err != nil {
				t.Fatalf("ParseURL(%q) accepted options that do not validate: %v", raw, err)
			}
			if loc.Prefix != "" {
				if err := remotestore.ValidateKey(loc.Prefix); err != nil {
					t.Fatalf("ParseURL(%q) accepted prefix %q: %v", raw, loc.Prefix, err)
				}
			}
		}
	})
}

func TestOpenFile(t *testing.T) {
	dir := t.TempDir()
	s, err := remotestore.Open("file://" + dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Check(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	put(t, s, "topic/0/x", []byte("x"))
	if got, err := get(t, s, "topic/0/x", 0, -1); err != nil || string(got) != "x" {
		t.Fatalf("%q, %v", got, err)
	}
}

func TestValidateKey(t *testing.T) {
	for _, key := range []string{"a", "topic/0/00000000000000000000-3-abc.log", "a.b/c-d_e", "...", ".hidden/x", "a/.strata-tmpx"} {
		if err := remotestore.ValidateKey(key); err != nil {
			t.Errorf("ValidateKey(%q): %v", key, err)
		}
	}
	for _, key := range []string{"", "/a", "a/", "a//b", ".", "..", "a/./b", "a/..", `a\b`, "a\x00", ".strata-tmp", "x/.strata-tmp/y"} {
		if err := remotestore.ValidateKey(key); err == nil {
			t.Errorf("ValidateKey(%q) accepted", key)
		}
	}
}
