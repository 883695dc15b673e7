package remotestore

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// prefixed puts every key under prefix + "/", so the rest of Strata uses keys
// relative to the --remote URL's prefix (s3://bucket/prod/cluster-a).
type prefixed struct {
	inner  Storage
	prefix string // ends in '/'
}

var _ Storage = (*prefixed)(nil)

// WithPrefix returns s with keys relative to prefix. prefix must be a valid
// key itself (no leading or trailing '/').
func WithPrefix(s Storage, prefix string) Storage {
	return &prefixed{inner: s, prefix: prefix + "/"}
}

func (p *prefixed) key(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	return p.prefix + key, nil
}

func (p *prefixed) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	k, err := p.key(key)
	if err != nil {
		return err
	}
	return p.inner.Put(ctx, k, r, size)
}

func (p *prefixed) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	k, err := p.key(key)
	if err != nil {
		return err
	}
	return p.inner.PutIfAbsent(ctx, k, r, size)
}

func (p *prefixed) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	k, err := p.key(key)
	if err != nil {
		return nil, err
	}
	return p.inner.Get(ctx, k, offset, length)
}

func (p *prefixed) Head(ctx context.Context, key string) (ObjectInfo, error) {
	k, err := p.key(key)
	if err != nil {
		return ObjectInfo{}, err
	}
	info, err := p.inner.Head(ctx, k)
	info.Key = key
	return info, err
}

func (p *prefixed) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	infos, err := p.inner.List(ctx, p.prefix+prefix)
	if err != nil {
		return nil, err
	}
	for i := range infos {
		k, ok := strings.CutPrefix(infos[i].Key, p.prefix)
		if !ok {
			return nil, fmt.Errorf("remotestore: list %q returned key %q outside prefix %q", prefix, infos[i].Key, p.prefix)
		}
		infos[i].Key = k
	}
	return infos, nil
}

func (p *prefixed) Delete(ctx context.Context, keys ...string) error {
	full := make([]string, len(keys))
	for i, key := range keys {
		k, err := p.key(key)
		if err != nil {
			return err
		}
		full[i] = k
	}
	return p.inner.Delete(ctx, full...)
}

func (p *prefixed) Check(ctx context.Context) error { return p.inner.Check(ctx) }

func (p *prefixed) Close() error { return p.inner.Close() }

// Unwrap returns the wrapped store.
func (p *prefixed) Unwrap() Storage { return p.inner }
