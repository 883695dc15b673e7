package remotestore

import (
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Location is a parsed --remote URL.
type Location struct {
	// Dir is the directory of a file:// URL; empty for s3://.
	Dir string
	// S3 holds the bucket, endpoint, region and path style of an s3:// URL
	// (Bucket empty for file://).
	S3 S3Options
	// Prefix is the key prefix of an s3:// URL ("a/b" for s3://bucket/a/b/),
	// without leading or trailing '/'; empty for none.
	Prefix string
}

// s3Params are the query parameters an s3:// URL may carry.
var s3Params = []string{"endpoint", "region", "path_style"}

// ParseURL parses the broker's --remote flag (DESIGN.md):
//
//	file:///absolute/path
//	s3://bucket[/prefix][?endpoint=http://host:port&region=R&path_style=true]
//
// Credentials never go in the URL; they come from the AWS environment and
// profile chain.
func ParseURL(raw string) (Location, error) {
	bad := func(format string, args ...any) (Location, error) {
		return Location{}, fmt.Errorf("remotestore: bad remote URL %q: %s (want file:///path or s3://bucket/prefix?endpoint=http://host:port&region=R&path_style=true)",
			raw, fmt.Sprintf(format, args...))
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("%v", err)
	}
	if u.User != nil {
		return bad("credentials do not go in the URL; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE")
	}
	if u.Opaque != "" {
		return bad("missing // after %s:", u.Scheme)
	}
	if u.Fragment != "" || u.RawFragment != "" || strings.Contains(raw, "#") {
		return bad("unexpected #fragment")
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return bad("a file URL has no host (%q); write file:///absolute/path", u.Host)
		}
		if u.RawQuery != "" {
			return bad("a file URL takes no ?parameters")
		}
		if u.Path == "" || !filepath.IsAbs(u.Path) {
			return bad("no absolute directory path")
		}
		if filepath.Clean(u.Path) == "/" {
			return bad("refusing to use / as the store")
		}
		return Location{Dir: filepath.Clean(u.Path)}, nil
	case "s3":
		loc := Location{S3: S3Options{Bucket: u.Host}}
		if u.Host == "" {
			return bad("no bucket")
		}
		if u.Port() != "" || !bucketName.MatchString(u.Host) {
			return bad("%q is not a valid bucket name (3-63 lower-case letters, digits, '.' and '-')", u.Host)
		}
		if p := strings.Trim(u.Path, "/"); p != "" {
			if err := ValidateKey(p); err != nil {
				return bad("prefix %q: %v", p, err)
			}
			loc.Prefix = p
		}
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return bad("%v", err)
		}
		for name, vals := range q {
			if !slices.Contains(s3Params, name) {
				return bad("unknown parameter %q (known: %s)", name, strings.Join(s3Params, ", "))
			}
			if len(vals) != 1 {
				return bad("parameter %q given %d times", name, len(vals))
			}
		}
		loc.S3.Endpoint = q.Get("endpoint")
		loc.S3.Region = q.Get("region")
		if v := q.Get("path_style"); v != "" {
			ps, err := strconv.ParseBool(v)
			if err != nil {
				return bad("path_style=%q is not true or false", v)
			}
			loc.S3.PathStyle = ps
		}
		if loc.S3.Endpoint != "" {
			e, err := url.Parse(loc.S3.Endpoint)
			if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" || e.User != nil {
				return bad("endpoint %q is not an http:// or https:// URL with a host", loc.S3.Endpoint)
			}
		}
		return loc, nil
	case "":
		return bad("no scheme")
	default:
		return bad("unknown scheme %q", u.Scheme)
	}
}

// Open returns the Storage a --remote URL names (see ParseURL), with keys
// relative to the URL's prefix. It does no network I/O; call Check.
func Open(raw string) (Storage, error) {
	loc, err := ParseURL(raw)
	if err != nil {
		return nil, err
	}
	return loc.Open()
}

// Open returns the Storage the location names. Tests and tools adjust
// l.S3 (timeouts, part sizes, credentials) between ParseURL and Open.
func (l Location) Open() (Storage, error) {
	if l.Dir != "" {
		return NewLocal(l.Dir)
	}
	s, err := NewS3(l.S3)
	if err != nil {
		return nil, err
	}
	if l.Prefix == "" {
		return s, nil
	}
	return WithPrefix(s, l.Prefix), nil
}
