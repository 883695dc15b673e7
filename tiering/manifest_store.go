package tiering

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/strata-broker/strata/remotestore"
)

// ErrFenced means another writer (a newer leader) committed a manifest version
// this writer did not know about: it must stop writing for the partition.
var ErrFenced = errors.New("tiering: manifest changed by another writer (fenced)")

// PartitionPrefix is where a partition's objects live in the bucket.
func PartitionPrefix(topic string, partition int32) string {
	return fmt.Sprintf("%s/%d/", topic, partition)
}

const manifestDir = "manifest/"

func headKey(prefix string, version int64) string {
	return fmt.Sprintf("%s%s%020d.json", prefix, manifestDir, version)
}

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// manifestStore reads and writes one partition's manifest objects.
type manifestStore struct {
	store  remotestore.Storage
	prefix string
}

// load finds the newest head (one LIST), reads it and its parts.
func (ms *manifestStore) load(ctx context.Context, topic string, partition int32) (*Manifest, error) {
	objs, err := ms.store.List(ctx, ms.prefix+manifestDir)
	if err != nil {
		return nil, fmt.Errorf("tiering: list manifests of %s: %w", ms.prefix, err)
	}
	best, bestKey := int64(-1), ""
	for _, o := range objs {
		name := strings.TrimPrefix(o.Key, ms.prefix+manifestDir)
		if strings.HasPrefix(name, "part-") || !strings.HasSuffix(name, ".json") {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSuffix(name, ".json"), 10, 64)
		if err == nil && v > best {
			best, bestKey = v, o.Key
		}
	}
	if best < 0 {
		return NewManifest(topic, partition), nil
	}
	b, err := ms.read(ctx, bestKey)
	if err != nil {
		return nil, err
	}
	m, err := DecodeHead(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", bestKey, err)
	}
	if m.Version != best {
		return nil, fmt.Errorf("%w: %s holds version %d", ErrCorruptManifest, bestKey, m.Version)
	}
	parts := make([][]RemoteSegment, len(m.Parts))
	for i, ref := range m.Parts {
		pb, err := ms.read(ctx, ref.Key)
		if err != nil {
			return nil, err
		}
		if parts[i], err = DecodePart(pb, ref); err != nil {
			return nil, err
		}
	}
	if err := m.AttachParts(parts); err != nil {
		return nil, err
	}
	return m, nil
}

func (ms *manifestStore) read(ctx context.Context, key string) ([]byte, error) {
	rc, err := ms.store.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("tiering: read %s: %w", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("tiering: read %s: %w", key, err)
	}
	return b, nil
}

// commit writes m as the next version. Creating the object only if absent is
// the fence: if a newer leader already wrote that version, this fails with
// ErrFenced and m is left at its old version.
func (ms *manifestStore) commit(ctx context.Context, m *Manifest) error {
	m.Version++
	b, err := m.EncodeHead()
	if err != nil {
		m.Version--
		return err
	}
	key := headKey(ms.prefix, m.Version)
	if err := ms.store.PutIfAbsent(ctx, key, bytes.NewReader(b), int64(len(b))); err != nil {
		m.Version--
		if errors.Is(err, remotestore.ErrExists) {
			return fmt.Errorf("%w: version %d of %s exists", ErrFenced, m.Version+1, ms.prefix)
		}
		return fmt.Errorf("tiering: write manifest %s: %w", key, err)
	}
	// Older heads are history. Removing them in one batched DELETE every
	// 64 versions (keeping the previous one) costs a copy far less than a
	// DELETE per commit; the sweeper catches any a crash leaves.
	if m.Version%64 == 0 {
		var old []string
		for v := max(1, m.Version-128); v < m.Version-1; v++ {
			old = append(old, headKey(ms.prefix, v))
		}
		ms.store.Delete(ctx, old...)
	}
	return nil
}

// spill moves finished entries beyond keep into a new immutable part. The
// part is written first; the next commit references it.
func (ms *manifestStore) spill(ctx context.Context, m *Manifest, keep, min int) error {
	n := m.Spillable(keep)
	if n < min {
		return nil
	}
	segs := m.Segments[m.Spilled : m.Spilled+n]
	b, err := EncodePart(segs)
	if err != nil {
		return err
	}
	ref := ManifestPart{
		Key:        fmt.Sprintf("%s%spart-%020d-%s.json", ms.prefix, manifestDir, segs[0].BaseOffset, newID()),
		BaseOffset: segs[0].BaseOffset, LastOffset: segs[n-1].LastOffset, Count: n,
	}
	for _, s := range segs {
		ref.Bytes += s.Size
	}
	if err := ms.store.Put(ctx, ref.Key, bytes.NewReader(b), int64(len(b))); err != nil {
		return fmt.Errorf("tiering: write manifest part: %w", err)
	}
	m.Parts = append(m.Parts, ref)
	m.Spilled += n
	return nil
}
