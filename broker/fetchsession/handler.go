package fetchsession

import "github.com/twmb/franz-go/pkg/kerr"

// Handler is the fetching side of one session with one broker, Kafka's
// FetchSessionHandler: a follower's fetcher keeps one per leader. Each
// round it says which partitions it wants with which parameters; Build
// turns that into a full request (no session yet, or starting over) or an
// incremental one (only partitions that are new or whose parameters
// changed, plus the ones no longer wanted as forgotten), and Handle moves
// the session on from the answer.
//
// After a session error or a failed round trip the next request is a full
// one with epoch 0 under the old id, which also closes the old session on
// the broker (Kafka's nextCloseExistingAttemptNew).
//
// A Handler is not safe for concurrent use: its fetcher's goroutine owns it.
type Handler struct {
	id    int32
	epoch int32 // InitialEpoch: the next request is full
	// held is what the broker's session holds, as of the last answered
	// request: each partition with the parameters it was last sent.
	held map[Key]Params
}

// Build is one request's session fields and partitions.
type Build struct {
	SessionID, Epoch int32
	// Full: every wanted partition is in Partitions.
	Full bool
	// Partitions go in the request, in the order wanted.
	Partitions []Partition
	// Forgotten are partitions of the session no longer wanted.
	Forgotten []Key

	want []Partition
}

// Build prepares the next request for the partitions wanted now.
func (h *Handler) Build(want []Partition) Build {
	b := Build{SessionID: h.id, Epoch: h.epoch, want: want}
	if h.epoch == InitialEpoch || h.held == nil {
		b.Epoch, b.Full, b.Partitions = InitialEpoch, true, want
		return b
	}
	wanted := make(map[Key]struct{}, len(want))
	for _, p := range want {
		wanted[p.Key] = struct{}{}
		if prev, ok := h.held[p.Key]; !ok || prev != p.Params {
			b.Partitions = append(b.Partitions, p)
		}
	}
	for k := range h.held {
		if _, ok := wanted[k]; !ok {
			b.Forgotten = append(b.Forgotten, k)
		}
	}
	return b
}

// Handle applies the answer to b's request: the response's top-level error
// code and session id. It reports whether the response's partitions may be
// used; on a session error they are not (there are none), and the next
// request starts over with a full fetch.
func (h *Handler) Handle(b Build, errorCode int16, sessionID int32) bool {
	if errorCode != 0 {
		switch kerr.ErrorForCode(errorCode) {
		case kerr.FetchSessionIDNotFound:
			// The session is gone: a new one, under no id.
			h.id, h.epoch, h.held = InvalidSessionID, InitialEpoch, nil
		default:
			h.Reset()
		}
		return false
	}
	if sessionID == InvalidSessionID {
		// No session (the broker had no room, or closed it): try to open
		// one with the next request, as Kafka's client does.
		h.id, h.epoch, h.held = InvalidSessionID, InitialEpoch, nil
		return true
	}
	if b.Full || sessionID != h.id {
		h.held = make(map[Key]Params, len(b.want))
	}
	for _, p := range b.want {
		h.held[p.Key] = p.Params
	}
	for _, k := range b.Forgotten {
		delete(h.held, k)
	}
	if b.Full || sessionID != h.id {
		h.id, h.epoch = sessionID, nextEpoch(InitialEpoch)
	} else {
		h.epoch = nextEpoch(h.epoch)
	}
	return true
}

// Reset makes the next request a full one that closes the current session:
// after a failed round trip, whose effect on the broker is unknown.
func (h *Handler) Reset() {
	h.epoch, h.held = InitialEpoch, nil
}

// SessionID is the session in use, InvalidSessionID for none.
func (h *Handler) SessionID() int32 { return h.id }
