package tiering

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
)

// SegmentState is where a remote segment is in its life. Copy and deletion
// are small state machines whose every step is recorded in the manifest
// before the objects change, so a crash at any point leaves either a complete
// referenced segment or objects that the sweeper may remove.
type SegmentState string

const (
	// CopyStarted: objects may be partly uploaded; not readable.
	CopyStarted SegmentState = "copy_started"
	// CopyFinished: objects complete; readable.
	CopyFinished SegmentState = "copy_finished"
	// DeleteStarted: no longer readable; objects are being deleted. The
	// entry is dropped from the manifest once they are gone.
	DeleteStarted SegmentState = "delete_started"
)

// ErrCorruptManifest marks manifest bytes that fail validation.
var ErrCorruptManifest = errors.New("tiering: corrupt manifest")

// EpochStart is a leader epoch and the first offset written in it.
type EpochStart struct {
	Epoch       int32 `json:"epoch"`
	StartOffset int64 `json:"start_offset"`
}

// RemoteSegment is one manifest entry.
type RemoteSegment struct {
	ID           string       `json:"id"`
	BaseOffset   int64        `json:"base_offset"`
	LastOffset   int64        `json:"last_offset"`
	MinTimestamp int64        `json:"min_timestamp"`
	MaxTimestamp int64        `json:"max_timestamp"`
	Size         int64        `json:"size"`
	LeaderEpoch  int32        `json:"leader_epoch"` // epoch of the leader that copied it
	Epochs       []EpochStart `json:"epochs,omitempty"`
	State        SegmentState `json:"state"`
	// AppendedAtMs is when the broker wrote the segment's newest batch (its
	// local file time), used to bound retention of future-stamped data.
	AppendedAtMs int64 `json:"appended_at_ms,omitempty"`
	// AbortedTxns is how many entries the segment's transaction index
	// (in its index bundle) holds, so a read_committed fetch from the
	// bucket skips the bundle GET of every segment without an aborted
	// transaction. nil: not known (copied before this field existed).
	AbortedTxns *int `json:"aborted_txns,omitempty"`
}

// noAbortedTxns reports whether the segment is known to hold no aborted
// transaction.
func (s RemoteSegment) noAbortedTxns() bool { return s.AbortedTxns != nil && *s.AbortedTxns == 0 }

// LogKey and IndexesKey are the segment's objects under partition prefix p.
func (s RemoteSegment) LogKey(p string) string     { return s.keyBase(p) + ".log" }
func (s RemoteSegment) IndexesKey(p string) string { return s.keyBase(p) + ".indexes" }
func (s RemoteSegment) keyBase(p string) string {
	return fmt.Sprintf("%s%020d-%d-%s", p, s.BaseOffset, s.LeaderEpoch, s.ID)
}

// ManifestPart names a spilled, immutable list of finished entries.
type ManifestPart struct {
	Key        string `json:"key"`
	BaseOffset int64  `json:"base_offset"`
	LastOffset int64  `json:"last_offset"`
	Count      int    `json:"count"`
	Bytes      int64  `json:"bytes"`
}

// Manifest is a partition's remote state. In memory it holds every entry
// (spilled ones too, Spilled of them at the front); the head object stores
// only the entries after those.
type Manifest struct {
	Version     int64  `json:"version"`
	Topic       string `json:"topic"`
	Partition   int32  `json:"partition"`
	LeaderEpoch int32  `json:"leader_epoch"` // epoch of the last writer
	// LogStartOffset is the first remote offset readable; entries wholly
	// below it are dead even while their objects still exist.
	LogStartOffset int64           `json:"log_start_offset"`
	Parts          []ManifestPart  `json:"parts,omitempty"`
	Segments       []RemoteSegment `json:"segments"`
	// Spilled counts the leading Segments that live in Parts.
	Spilled int `json:"-"`
}

// NewManifest is the empty manifest of a partition.
func NewManifest(topic string, partition int32) *Manifest {
	return &Manifest{Topic: topic, Partition: partition, LogStartOffset: -1}
}

// Readable returns the finished entries at or above the log start, in order.
func (m *Manifest) Readable() []RemoteSegment {
	var out []RemoteSegment
	for _, s := range m.Segments {
		if s.State == CopyFinished && s.LastOffset >= m.LogStartOffset {
			out = append(out, s)
		}
	}
	return out
}

// StartOffset is the first remote offset a reader can get, or -1 if none.
func (m *Manifest) StartOffset() int64 {
	for _, s := range m.Segments {
		if s.State == CopyFinished && s.LastOffset >= m.LogStartOffset {
			return max(s.BaseOffset, m.LogStartOffset)
		}
	}
	return -1
}

// EndOffset is one past the last finished remote offset, or -1 if none.
func (m *Manifest) EndOffset() int64 {
	end := int64(-1)
	for _, s := range m.Segments {
		if s.State == CopyFinished && s.LastOffset+1 > end {
			end = s.LastOffset + 1
		}
	}
	return end
}

// CopiedUpTo is the offset the next copy starts from: one past every entry
// that is copied or being copied (a started copy is resumed or replaced, never
// duplicated).
func (m *Manifest) CopiedUpTo() int64 {
	end := int64(0)
	for _, s := range m.Segments {
		if s.State != DeleteStarted && s.LastOffset+1 > end {
			end = s.LastOffset + 1
		}
	}
	return end
}

// Find returns the readable entry holding offset.
func (m *Manifest) Find(offset int64) (RemoteSegment, bool) {
	if offset < m.LogStartOffset {
		return RemoteSegment{}, false
	}
	i := sort.Search(len(m.Segments), func(i int) bool { return m.Segments[i].LastOffset >= offset })
	for ; i < len(m.Segments); i++ {
		s := m.Segments[i]
		if s.BaseOffset > offset && s.State == CopyFinished {
			// A gap (compaction or a deleted range): the next segment
			// holds the next readable offset.
			return s, true
		}
		if s.State == CopyFinished && s.BaseOffset <= offset && offset <= s.LastOffset {
			return s, true
		}
	}
	return RemoteSegment{}, false
}

// Begin records a copy about to start. It refuses an entry overlapping any
// live entry: the manifest never holds two entries for the same offsets.
func (m *Manifest) Begin(s RemoteSegment) error {
	if s.ID == "" || s.BaseOffset < 0 || s.LastOffset < s.BaseOffset {
		return fmt.Errorf("tiering: bad segment entry %+v", s)
	}
	for _, e := range m.Segments {
		if e.State != DeleteStarted && s.BaseOffset <= e.LastOffset && e.BaseOffset <= s.LastOffset {
			return fmt.Errorf("tiering: segment [%d, %d] overlaps entry %s [%d, %d] (%s)", s.BaseOffset, s.LastOffset, e.ID, e.BaseOffset, e.LastOffset, e.State)
		}
	}
	s.State = CopyStarted
	m.Segments = append(m.Segments, s)
	sort.SliceStable(m.Segments[m.Spilled:], func(i, j int) bool {
		return m.Segments[m.Spilled+i].BaseOffset < m.Segments[m.Spilled+j].BaseOffset
	})
	return nil
}

// Finish marks a started copy complete.
func (m *Manifest) Finish(id string) error {
	return m.transition(id, CopyStarted, CopyFinished)
}

// StartDelete marks an entry for deletion (from any state). Spilled entries
// cannot change; they die by LogStartOffset moving past them.
func (m *Manifest) StartDelete(id string) error {
	for i := m.Spilled; i < len(m.Segments); i++ {
		if m.Segments[i].ID == id {
			m.Segments[i].State = DeleteStarted
			return nil
		}
	}
	return fmt.Errorf("tiering: no mutable entry %q", id)
}

// Drop removes entries whose objects are gone.
func (m *Manifest) Drop(ids ...string) {
	gone := map[string]bool{}
	for _, id := range ids {
		gone[id] = true
	}
	out := m.Segments[:m.Spilled]
	for _, s := range m.Segments[m.Spilled:] {
		if !gone[s.ID] || s.State != DeleteStarted {
			out = append(out, s)
		}
	}
	m.Segments = out
}

func (m *Manifest) transition(id string, from, to SegmentState) error {
	for i := m.Spilled; i < len(m.Segments); i++ {
		if m.Segments[i].ID == id {
			if m.Segments[i].State != from {
				return fmt.Errorf("tiering: entry %s is %s, not %s", id, m.Segments[i].State, from)
			}
			m.Segments[i].State = to
			return nil
		}
	}
	return fmt.Errorf("tiering: no mutable entry %q", id)
}

// Spillable returns how many leading tail entries may move into a new part:
// a run of finished entries, leaving keep entries in the head.
func (m *Manifest) Spillable(keep int) int {
	n := 0
	tail := m.Segments[m.Spilled:]
	for n < len(tail)-keep && tail[n].State == CopyFinished {
		n++
	}
	return n
}

// manifestHead is the JSON of a head object; segments are only the tail.
type manifestHead struct {
	Format         int             `json:"format"`
	Version        int64           `json:"version"`
	Topic          string          `json:"topic"`
	Partition      int32           `json:"partition"`
	LeaderEpoch    int32           `json:"leader_epoch"`
	LogStartOffset int64           `json:"log_start_offset"`
	Parts          []ManifestPart  `json:"parts,omitempty"`
	Segments       []RemoteSegment `json:"segments"`
}

type manifestPartDoc struct {
	Format   int             `json:"format"`
	Segments []RemoteSegment `json:"segments"`
}

const manifestFormat = 1

// EncodeHead serialises the head object.
func (m *Manifest) EncodeHead() ([]byte, error) {
	h := manifestHead{Format: manifestFormat, Version: m.Version, Topic: m.Topic, Partition: m.Partition,
		LeaderEpoch: m.LeaderEpoch, LogStartOffset: m.LogStartOffset, Parts: m.Parts, Segments: m.Segments[m.Spilled:]}
	if h.Segments == nil {
		h.Segments = []RemoteSegment{}
	}
	return json.Marshal(h) // compact: the head is rewritten twice per copy
}

// DecodeHead parses a head object; parts are attached later with AttachPart.
func DecodeHead(b []byte) (*Manifest, error) {
	var h manifestHead
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptManifest, err)
	}
	if h.Format != manifestFormat {
		return nil, fmt.Errorf("%w: format %d", ErrCorruptManifest, h.Format)
	}
	m := &Manifest{Version: h.Version, Topic: h.Topic, Partition: h.Partition, LeaderEpoch: h.LeaderEpoch,
		LogStartOffset: h.LogStartOffset, Parts: h.Parts, Segments: h.Segments}
	if err := validateSegments(m.Segments); err != nil {
		return nil, err
	}
	for i, p := range m.Parts {
		if p.Count <= 0 || p.LastOffset < p.BaseOffset || (i > 0 && p.BaseOffset <= m.Parts[i-1].LastOffset) {
			return nil, fmt.Errorf("%w: part %d out of order", ErrCorruptManifest, i)
		}
	}
	return m, nil
}

// EncodePart serialises segments into an immutable part object.
func EncodePart(segs []RemoteSegment) ([]byte, error) {
	return json.Marshal(manifestPartDoc{Format: manifestFormat, Segments: segs})
}

// DecodePart parses a part object and checks it matches its reference.
func DecodePart(b []byte, ref ManifestPart) ([]RemoteSegment, error) {
	var d manifestPartDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%w: part %s: %v", ErrCorruptManifest, ref.Key, err)
	}
	if err := validateSegments(d.Segments); err != nil {
		return nil, err
	}
	if len(d.Segments) != ref.Count || d.Segments[0].BaseOffset != ref.BaseOffset || d.Segments[len(d.Segments)-1].LastOffset != ref.LastOffset {
		return nil, fmt.Errorf("%w: part %s does not match its reference", ErrCorruptManifest, ref.Key)
	}
	for _, s := range d.Segments {
		if s.State != CopyFinished {
			return nil, fmt.Errorf("%w: part %s holds a %s entry", ErrCorruptManifest, ref.Key, s.State)
		}
	}
	return d.Segments, nil
}

// AttachParts places decoded parts (in Parts order) ahead of the tail.
func (m *Manifest) AttachParts(parts [][]RemoteSegment) error {
	if len(parts) != len(m.Parts) {
		return fmt.Errorf("%w: %d parts for %d references", ErrCorruptManifest, len(parts), len(m.Parts))
	}
	var all []RemoteSegment
	for _, p := range parts {
		all = append(all, p...)
	}
	m.Spilled = len(all)
	all = append(all, m.Segments...)
	if err := validateSegments(all); err != nil {
		return err
	}
	m.Segments = all
	return nil
}

// validateSegments: sorted by base offset, sane ranges, known states, and no
// two live entries overlapping.
func validateSegments(segs []RemoteSegment) error {
	lastLive := int64(-1)
	for i, s := range segs {
		switch s.State {
		case CopyStarted, CopyFinished, DeleteStarted:
		default:
			return fmt.Errorf("%w: entry %d has state %q", ErrCorruptManifest, i, s.State)
		}
		if s.ID == "" || s.BaseOffset < 0 || s.LastOffset < s.BaseOffset || s.Size < 0 {
			return fmt.Errorf("%w: entry %d has bad fields", ErrCorruptManifest, i)
		}
		if i > 0 && s.BaseOffset < segs[i-1].BaseOffset {
			return fmt.Errorf("%w: entries out of order at %d", ErrCorruptManifest, i)
		}
		if s.State != DeleteStarted {
			if s.BaseOffset <= lastLive {
				return fmt.Errorf("%w: entry %d overlaps an earlier live entry", ErrCorruptManifest, i)
			}
			lastLive = s.LastOffset
		}
	}
	return nil
}
