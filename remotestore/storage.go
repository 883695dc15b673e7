// Package remotestore is Strata's object-store interface: put, ranged get,
// head, list by prefix and batched delete, with an S3 implementation
// (aws-sdk-go-v2; AWS S3 and MinIO) and a local-directory implementation
// (the embedded default, `file:///path`). It knows nothing about segments or
// Kafka; tiering/ builds the bucket layout on top of it.
//
// The shape follows pebble's objstorage/remote: one small interface, one file
// per implementation, wrappers (prefix, request counting) that compose.
//
// Keys are '/'-separated relative paths ("topic/0/00000000000000000000-3-x.log").
// Every implementation accepts exactly the same keys (see ValidateKey), so a
// key that works against a local directory works against S3 and the other way
// round.
package remotestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Storage is an object store. Implementations are safe for concurrent use.
//
// Objects are immutable blobs: a reader never sees a partially written object,
// and a Put replaces the whole object atomically.
type Storage interface {
	// Put stores exactly size bytes read from r under key, replacing any
	// existing object. It fails if r ends before size bytes; bytes after size
	// are not read. Large objects go up in parts (S3 multipart upload).
	Put(ctx context.Context, key string, r io.Reader, size int64) error

	// PutIfAbsent is Put that fails with ErrExists, writing nothing, when key
	// already exists (S3: If-None-Match: *). Two concurrent callers for one
	// key: exactly one succeeds. It is how a deposed leader is kept from
	// overwriting what a newer one wrote. Objects are limited to one request
	// (5 GiB on S3); it is meant for manifests.
	PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error

	// Get reads length bytes of key starting at offset; length -1 reads to the
	// end. A range running past the end is cut short at the end (the reader
	// returns fewer bytes: use io.ReadFull to insist on all of them); an offset
	// at or past the end fails with ErrRange. A missing key is ErrNotFound.
	Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)

	// Head returns the object's size, ETag and modification time, or
	// ErrNotFound.
	Head(ctx context.Context, key string) (ObjectInfo, error)

	// List returns every object whose key starts with prefix, sorted by key.
	// Paging through the store's listing is internal. An empty prefix lists
	// everything.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)

	// Delete removes the keys, batching requests (S3 DeleteObjects, up to
	// 1000 a request). Keys that do not exist are not an error, so a delete
	// can be retried after a crash.
	Delete(ctx context.Context, keys ...string) error

	// Check verifies that the store can be used: the endpoint answers, the
	// credentials are accepted and the bucket (or directory) exists. The
	// broker calls it at start so a misconfiguration is a clear error there,
	// not a silent stall in the copier.
	Check(ctx context.Context) error

	// Close releases resources (idle connections). It does not wait for
	// in-flight calls.
	Close() error
}

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key     string
	Size    int64
	ETag    string    // opaque; changes when the object is replaced (empty from List on a local directory)
	ModTime time.Time // when the object was last written
}

var (
	// ErrNotFound is returned (wrapped) when an object does not exist.
	ErrNotFound = errors.New("remotestore: object not found")
	// ErrExists is returned (wrapped) by PutIfAbsent when the key exists.
	ErrExists = errors.New("remotestore: object already exists")
	// ErrRange is returned (wrapped) by Get when offset is at or past the
	// end of the object.
	ErrRange = errors.New("remotestore: range starts at or past the end of the object")
)

// tmpDirName is the directory a local store writes temporary files into; keys
// may not start with it.
const tmpDirName = ".strata-tmp"

// ValidateKey reports whether key is usable with every implementation: a
// non-empty, '/'-separated relative path with no empty, "." or ".." segments
// (so it can never escape a local store's directory), no trailing '/', no
// backslashes or NUL bytes, at most 1024 bytes (S3's limit), and not inside
// the local store's temporary directory.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("remotestore: empty key")
	case len(key) > 1024:
		return fmt.Errorf("remotestore: key of %d bytes is longer than 1024", len(key))
	case strings.ContainsAny(key, "\\\x00"):
		return fmt.Errorf("remotestore: key %q contains a backslash or NUL", key)
	case strings.HasPrefix(key, "/"):
		return fmt.Errorf("remotestore: key %q is absolute", key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return fmt.Errorf("remotestore: key %q has an empty path segment", key)
		case ".", "..":
			return fmt.Errorf("remotestore: key %q has a %q segment", key, seg)
		case tmpDirName:
			return fmt.Errorf("remotestore: key %q uses the reserved name %s", key, tmpDirName)
		}
	}
	return nil
}

// validateRange checks Get's offset and length.
func validateRange(key string, offset, length int64) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if offset < 0 || length < -1 || length == 0 {
		return fmt.Errorf("remotestore: get %s: bad range offset=%d length=%d (length is > 0 or -1 for the rest)", key, offset, length)
	}
	return nil
}
