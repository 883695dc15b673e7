package replica

import "slices"

// simLog is a replica's log reduced to what truncation is about: one entry
// per offset naming the epoch it was written in and a unique write id, and
// Kafka's leader-epoch cache over it (LeaderEpochFileCache's assign,
// truncateFromEnd and endOffsetFor rules).
type simLog struct {
	recs   []simRec
	epochs []simEpoch
	hw     int64
}

type simRec struct {
	epoch int32
	id    int
}

type simEpoch struct {
	epoch int32
	start int64
}

func (l *simLog) leo() int64 { return int64(len(l.recs)) }

func (l *simLog) latestEpoch() int32 {
	if len(l.epochs) == 0 {
		return UndefinedEpoch
	}
	return l.epochs[len(l.epochs)-1].epoch
}

// assign records that epoch starts at start, dropping entries that
// conflict (an epoch >= it or a start >= it), as Kafka's assign does.
func (l *simLog) assign(epoch int32, start int64) {
	if n := len(l.epochs); n > 0 && l.epochs[n-1].epoch == epoch {
		return
	}
	i := len(l.epochs)
	for i > 0 && (l.epochs[i-1].epoch >= epoch || l.epochs[i-1].start >= start) {
		i--
	}
	l.epochs = append(l.epochs[:i], simEpoch{epoch, start})
}

// truncate is Kafka's UnifiedLog.truncateTo: even when off is at or past
// the end, epoch entries starting at the end go (a leader that was elected
// but appended nothing leaves one; keeping it makes the follower claim an
// epoch it has no data of, and the DivergingEpoch exchange never ends).
func (l *simLog) truncate(off int64) {
	off = min(off, l.leo())
	l.recs = l.recs[:off]
	i := len(l.epochs)
	for i > 0 && l.epochs[i-1].start >= off {
		i--
	}
	l.epochs = l.epochs[:i]
	l.hw = min(l.hw, off)
}

// append adds records as a leader or follower does: a record of a newer
// epoch starts that epoch in the cache.
func (l *simLog) append(recs ...simRec) {
	for _, r := range recs {
		if r.epoch != l.latestEpoch() {
			l.assign(r.epoch, l.leo())
		}
		l.recs = append(l.recs, r)
	}
}

// endOffsetFor is Kafka's LeaderEpochFileCache.endOffsetFor.
func (l *simLog) endOffsetFor(epoch int32) (int32, int64) {
	if epoch < 0 || len(l.epochs) == 0 {
		return UndefinedEpoch, UndefinedOffset
	}
	if epoch == l.latestEpoch() {
		return epoch, l.leo()
	}
	higher := -1
	for i, e := range l.epochs {
		if e.epoch > epoch {
			higher = i
			break
		}
	}
	switch higher {
	case -1:
		return UndefinedEpoch, UndefinedOffset
	case 0:
		return epoch, l.epochs[0].start
	}
	return l.epochs[higher-1].epoch, l.epochs[higher].start
}

func (l *simLog) view() FollowerLog {
	return FollowerLog{LatestEpoch: l.latestEpoch(), LogEndOffset: l.leo(), HighWatermark: l.hw, EndOffsetForEpoch: l.endOffsetFor}
}

func (l *simLog) clone() *simLog {
	return &simLog{recs: slices.Clone(l.recs), epochs: slices.Clone(l.epochs), hw: l.hw}
}

// commonPrefix is how many leading records a and b share.
func commonPrefix(a, b *simLog) int64 {
	n := 0
	for n < len(a.recs) && n < len(b.recs) && a.recs[n] == b.recs[n] {
		n++
	}
	return int64(n)
}

// build makes a log from (epoch, count) runs. A record's id is its epoch and
// offset: two logs hold the same record at an offset exactly when they hold
// one of the same epoch there (one leader per epoch, so this is what a real
// history gives).
func build(runs ...[2]int) *simLog {
	l := &simLog{}
	id := 0
	for _, r := range runs {
		for range r[1] {
			id++
			l.append(simRec{epoch: int32(r[0]), id: r[0]*1000 + id})
		}
	}
	return l
}
