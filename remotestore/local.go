package remotestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// local stores each object as a file under dir, the key's '/' segments as
// subdirectories. Writes go to a temporary file in dir/.strata-tmp that is
// fsynced and then renamed (or, for PutIfAbsent, hard-linked) into place, so
// a reader — or a crash — never sees a partial object.
//
// Unlike S3, a key cannot be both an object and a "directory" of other keys
// ("a" and "a/b"); such a Put fails. The bucket layout never does that.
type local struct {
	dir string
	tmp string
}

var _ Storage = (*local)(nil)

// NewLocal returns a Storage keeping objects in dir, creating dir if needed.
func NewLocal(dir string) (Storage, error) {
	if dir == "" {
		return nil, fmt.Errorf("remotestore: local store needs a directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("remotestore: local store %s: %w", dir, err)
	}
	s := &local{dir: abs, tmp: filepath.Join(abs, tmpDirName)}
	if err := os.MkdirAll(s.tmp, 0o755); err != nil {
		return nil, fmt.Errorf("remotestore: local store: %w", err)
	}
	return s, nil
}

func (s *local) String() string { return "file://" + s.dir }

func (s *local) path(key string) string {
	return filepath.Join(s.dir, filepath.FromSlash(key))
}

func (s *local) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	return s.put(ctx, "put", key, r, size, false)
}

func (s *local) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	return s.put(ctx, "put-if-absent", key, r, size, true)
}

func (s *local) put(ctx context.Context, op, key string, r io.Reader, size int64, ifAbsent bool) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("remotestore: %s %s: negative size %d", op, key, size)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("remotestore: %s %s: %w", op, key, err)
	}
	tmp, err := os.CreateTemp(s.tmp, "put-*")
	if err != nil {
		return fmt.Errorf("remotestore: %s %s: %w", op, key, err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // after a rename this is a no-op; after a link it drops the extra name
	n, err := io.Copy(tmp, io.LimitReader(ctxReader{ctx, r}, size))
	if err == nil && n < size {
		err = fmt.Errorf("reader ended after %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("remotestore: %s %s: %w", op, key, err)
	}

	final := s.path(key)
	// A concurrent Delete may remove the (empty) parent directory between
	// MkdirAll and the rename; try again a few times when it does.
	for attempt := 0; ; attempt++ {
		if err = os.MkdirAll(filepath.Dir(final), 0o755); err == nil {
			if ifAbsent {
				// link(2) fails with EEXIST instead of replacing: an atomic
				// create-if-absent.
				err = os.Link(tmpName, final)
			} else {
				err = os.Rename(tmpName, final)
			}
		}
		if err == nil || !errors.Is(err, fs.ErrNotExist) || attempt == 3 {
			break
		}
	}
	if err != nil {
		if ifAbsent && errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("remotestore: %s %s: %w", op, key, ErrExists)
		}
		return fmt.Errorf("remotestore: %s %s: %w", op, key, err)
	}
	if err := syncDir(filepath.Dir(final)); err != nil {
		return fmt.Errorf("remotestore: %s %s: %w", op, key, err)
	}
	return nil
}

func (s *local) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := validateRange(key, offset, length); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("remotestore: get %s: %w", key, err)
	}
	f, err := os.Open(s.path(key))
	if err != nil {
		return nil, s.fileErr("get", key, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("remotestore: get %s: %w", key, err)
	}
	if offset >= st.Size() && !(offset == 0 && length == -1) {
		f.Close()
		return nil, fmt.Errorf("remotestore: get %s [%d, +%d) of a %d-byte object: %w", key, offset, length, st.Size(), ErrRange)
	}
	n := st.Size() - offset
	if length >= 0 && length < n {
		n = length
	}
	return readCloser{io.NewSectionReader(f, offset, n), f}, nil
}

func (s *local) Head(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, err
	}
	st, err := os.Stat(s.path(key))
	if err != nil {
		return ObjectInfo{}, s.fileErr("head", key, err)
	}
	if !st.Mode().IsRegular() {
		return ObjectInfo{}, fmt.Errorf("remotestore: head %s: %w", key, ErrNotFound)
	}
	return localInfo(key, st), nil
}

// localInfo builds an ObjectInfo. The ETag is the modification time and size:
// it changes whenever the object is replaced, which is all callers may rely on.
func localInfo(key string, st fs.FileInfo) ObjectInfo {
	etag := strconv.FormatInt(st.ModTime().UnixNano(), 16) + "-" + strconv.FormatInt(st.Size(), 16)
	return ObjectInfo{Key: key, Size: st.Size(), ETag: etag, ModTime: st.ModTime()}
}

func (s *local) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	// Walk only the directory the prefix names ("a/b/c" → a/b), then filter.
	start := s.dir
	if i := strings.LastIndexByte(prefix, '/'); i > 0 {
		start = s.path(prefix[:i])
	}
	var out []ObjectInfo
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // the prefix's directory does not exist, or a concurrent delete
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == s.tmp {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(s.dir, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		st, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		} else if err != nil {
			return err
		}
		out = append(out, localInfo(key, st))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("remotestore: list %q: %w", prefix, err)
	}
	// Directory order is not byte order ("a/b" vs "a.b"); S3 lists in byte order.
	slices.SortFunc(out, func(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

func (s *local) Delete(ctx context.Context, keys ...string) error {
	for _, key := range keys {
		if err := ValidateKey(key); err != nil {
			return err
		}
	}
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("remotestore: delete: %w", err)
		}
		p := s.path(key)
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remotestore: delete %s: %w", key, err)
		}
		// Remove directories the delete emptied, so the tree does not fill up
		// with empty partition directories. Remove fails on a non-empty
		// directory, which ends the climb.
		for dir := filepath.Dir(p); dir != s.dir && strings.HasPrefix(dir, s.dir); dir = filepath.Dir(dir) {
			if os.Remove(dir) != nil {
				break
			}
		}
	}
	return nil
}

func (s *local) Check(ctx context.Context) error {
	st, err := os.Stat(s.dir)
	if err != nil {
		return fmt.Errorf("remotestore: %s: %w", s, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("remotestore: %s is not a directory", s)
	}
	f, err := os.CreateTemp(s.tmp, "check-*")
	if err != nil {
		return fmt.Errorf("remotestore: %s is not writable: %w", s, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

func (s *local) Close() error { return nil }

// fileErr maps a missing file (or a key whose parent is a file) to ErrNotFound.
func (s *local) fileErr(op, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("remotestore: %s %s: %w", op, key, ErrNotFound)
	}
	return fmt.Errorf("remotestore: %s %s: %w", op, key, err)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

type readCloser struct {
	io.Reader
	io.Closer
}

// ctxReader stops a long copy when ctx is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
