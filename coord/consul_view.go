package coord

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/consul/api"
)

// view is the decoded keyspace: what every read of a Consul coordinator
// answers from. It is rebuilt from the raw pairs after each change (a watch
// result or one of our own writes) and then never mutated, so it can be
// compared with its predecessor to produce events.
type view struct {
	clusterID  string
	controller controllerState
	brokers    map[int32]brokerState
	topics     map[string]topicState
	// orphans are topics with partition keys but no topic key: left by a
	// CreateTopic interrupted before its last transaction. extra are
	// partition keys at or beyond a topic's count: left by an interrupted
	// partition increase. Readers ignore both; a new controller removes them.
	orphans []string
	extra   map[string][]int32
}

type controllerState struct {
	node    int32 // -1: no controller
	epoch   int64 // the controller key's ModifyIndex
	session string
}

type brokerState struct {
	info    BrokerInfo // Epoch = the key's CreateIndex
	session string
	index   uint64 // ModifyIndex, for check-and-set
}

type topicState struct {
	meta      TopicMeta
	index     uint64   // the topic key's ModifyIndex
	partIndex []uint64 // each partition key's ModifyIndex
}

func emptyView() view {
	return view{controller: controllerState{node: -1}, brokers: map[int32]brokerState{},
		topics: map[string]topicState{}, extra: map[string][]int32{}}
}

// decoded is an entry together with the key's Consul metadata.
type decoded struct {
	entry
	create, modify uint64
	session        string
}

// problem is something in the keyspace that readers skip; logged once per
// key and ModifyIndex.
type problem struct {
	key   string
	index uint64
	level slog.Level
	msg   string
}

// buildView decodes pairs (full keys under prefix). A key whose value does
// not decode keeps its last good value from lastGood, if it had one, so that
// a corrupted partition key freezes that partition's state instead of making
// its topic vanish (which a broker would take as a deletion). lastGood is
// updated in place. prev is the previous view: a topic whose partition keys
// are incomplete keeps its previous state when it had one.
func buildView(prefix string, pairs map[string]*api.KVPair, lastGood map[string]decoded, prev view) (view, []problem) {
	v := emptyView()
	var probs []problem
	keys := slices.Sorted(maps.Keys(pairs))
	for k := range lastGood {
		if _, ok := pairs[k]; !ok {
			delete(lastGood, k)
		}
	}
	var entries []decoded
	for _, key := range keys {
		pair := pairs[key]
		rel, ok := strings.CutPrefix(key, prefix)
		if !ok || pair == nil {
			continue
		}
		e, err := decodeEntry(rel, pair.Value)
		if err == nil && (e.kind == entryBroker || e.kind == entryController) && pair.Session == "" {
			err = fmt.Errorf("%w %q: not held by a session", errGarbage, rel)
		}
		if err != nil {
			msg := err.Error() + "; skipped"
			d, had := lastGood[key]
			if had {
				msg = err.Error() + "; keeping its last readable value"
			}
			probs = append(probs, problem{key: key, index: pair.ModifyIndex, level: slog.LevelWarn, msg: msg})
			if !had {
				continue
			}
			entries = append(entries, d)
			continue
		}
		d := decoded{entry: e, create: pair.CreateIndex, modify: pair.ModifyIndex, session: pair.Session}
		lastGood[key] = d
		entries = append(entries, d)
	}

	docs := map[string]decoded{}
	parts := map[string]map[int32]decoded{}
	for _, d := range entries {
		switch d.kind {
		case entryClusterID:
			v.clusterID = d.clusterID
		case entryController:
			v.controller = controllerState{node: d.controller, epoch: int64(d.modify), session: d.session}
		case entryBroker:
			b := d.broker
			b.Epoch = int64(d.create)
			v.brokers[b.NodeID] = brokerState{info: b, session: d.session, index: d.modify}
		case entryTopic:
			docs[d.topic] = d
		case entryPartition:
			if parts[d.topic] == nil {
				parts[d.topic] = map[int32]decoded{}
			}
			parts[d.topic][d.partition.Partition] = d
		}
	}

	for _, name := range slices.Sorted(maps.Keys(docs)) {
		d := docs[name]
		n := d.topicDoc.Partitions
		ts := topicState{index: d.modify, meta: TopicMeta{Name: name, ID: d.topicID,
			Configs: maps.Clone(d.topicDoc.Configs), Internal: d.topicDoc.Internal, Version: d.topicDoc.Version}}
		got := parts[name]
		var absent []int32
		for p := int32(0); p < n && len(absent) < 5; p++ {
			if _, ok := got[p]; !ok {
				absent = append(absent, p)
			}
		}
		for p, pd := range got {
			if p >= n {
				v.extra[name] = append(v.extra[name], p)
				probs = append(probs, problem{key: prefix + "partitions/" + name + "/" + strconv.Itoa(int(p)), index: pd.modify, level: slog.LevelInfo,
					msg: fmt.Sprintf("partition key beyond the topic's %d partitions ignored (left by an interrupted partition increase; the controller removes it)", n)})
			}
		}
		slices.Sort(v.extra[name])
		if len(absent) > 0 {
			msg := fmt.Sprintf("topic %q lacks partition keys %v", name, absent)
			if old, ok := prev.topics[name]; ok && old.meta.ID == ts.meta.ID {
				v.topics[name] = old
				msg += "; keeping its last complete state"
			} else {
				msg += "; skipped"
			}
			probs = append(probs, problem{key: prefix + "topics/" + name, index: d.modify, level: slog.LevelWarn, msg: msg})
			continue
		}
		ts.meta.Partitions = make([]PartitionMeta, n)
		ts.partIndex = make([]uint64, n)
		for p := int32(0); p < n; p++ {
			ts.meta.Partitions[p] = got[p].partition.Clone()
			ts.partIndex[p] = got[p].modify
		}
		v.topics[name] = ts
	}
	for name := range parts {
		if _, ok := docs[name]; !ok {
			v.orphans = append(v.orphans, name)
		}
	}
	sort.Strings(v.orphans)
	return v, probs
}

func (v view) brokerList() []BrokerInfo {
	out := make([]BrokerInfo, 0, len(v.brokers))
	for _, id := range slices.Sorted(maps.Keys(v.brokers)) {
		out = append(out, v.brokers[id].info)
	}
	return out
}

func (v view) topicList() []TopicMeta {
	out := make([]TopicMeta, 0, len(v.topics))
	for _, name := range slices.Sorted(maps.Keys(v.topics)) {
		out = append(out, v.topics[name].meta.Clone())
	}
	return out
}

// initialEvents is what Watch delivers first: the brokers, the controller,
// then every topic in name order.
func (v view) initialEvents() []Event {
	evs := []Event{
		{Kind: BrokersChanged, Brokers: v.brokerList()},
		{Kind: ControllerChanged, Controller: v.controller.node, ControllerEpoch: v.controller.epoch},
	}
	for _, t := range v.topicList() {
		evs = append(evs, Event{Kind: TopicCreated, Topic: t})
	}
	return evs
}

// diffViews lists the events that take a watcher from old to cur: brokers,
// controller, then topics in name order. A topic whose id changed was
// deleted and created again between the two views.
func diffViews(old, cur view) []Event {
	var evs []Event
	if !maps.EqualFunc(old.brokers, cur.brokers, func(a, b brokerState) bool { return a.info == b.info }) {
		evs = append(evs, Event{Kind: BrokersChanged, Brokers: cur.brokerList()})
	}
	if old.controller.node != cur.controller.node || old.controller.epoch != cur.controller.epoch {
		evs = append(evs, Event{Kind: ControllerChanged, Controller: cur.controller.node, ControllerEpoch: cur.controller.epoch})
	}
	names := map[string]bool{}
	for n := range old.topics {
		names[n] = true
	}
	for n := range cur.topics {
		names[n] = true
	}
	for _, n := range slices.Sorted(maps.Keys(names)) {
		o, hadOld := old.topics[n]
		c, hasCur := cur.topics[n]
		switch {
		case hadOld && !hasCur:
			evs = append(evs, Event{Kind: TopicDeleted, Topic: o.meta.Clone()})
		case !hadOld && hasCur:
			evs = append(evs, Event{Kind: TopicCreated, Topic: c.meta.Clone()})
		case o.meta.ID != c.meta.ID:
			evs = append(evs, Event{Kind: TopicDeleted, Topic: o.meta.Clone()}, Event{Kind: TopicCreated, Topic: c.meta.Clone()})
		case !sameTopic(o.meta, c.meta):
			evs = append(evs, Event{Kind: TopicUpdated, Topic: c.meta.Clone()})
		}
	}
	return evs
}

func sameTopic(a, b TopicMeta) bool {
	if a.Name != b.Name || a.ID != b.ID || a.Internal != b.Internal || a.Version != b.Version ||
		!maps.Equal(a.Configs, b.Configs) || len(a.Partitions) != len(b.Partitions) {
		return false
	}
	for i := range a.Partitions {
		p, q := a.Partitions[i], b.Partitions[i]
		if p.Partition != q.Partition || p.Leader != q.Leader || p.LeaderEpoch != q.LeaderEpoch ||
			p.PartitionEpoch != q.PartitionEpoch || !slices.Equal(p.Replicas, q.Replicas) || !slices.Equal(p.ISR, q.ISR) {
			return false
		}
	}
	return true
}
