package broker_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/testenv"
)

func decodeInto(t *testing.T, resp kmsg.Response, version int16, body []byte) {
	t.Helper()
	resp.SetVersion(version)
	if err := resp.ReadFrom(body); err != nil {
		t.Fatalf("decode %T v%d: %v", resp, version, err)
	}
}

func wantCode(t *testing.T, what string, got int16, want *kerr.Error) {
	t.Helper()
	if got != want.Code {
		t.Fatalf("%s: got %v, want %v", what, kerr.ErrorForCode(got), want)
	}
}

// TestGroupRawProtocol walks one member through the classic protocol with
// hand-built requests, checking the errors Kafka gives at each wrong step.
func TestGroupRawProtocol(t *testing.T) {
	b := testenv.StartBroker(t, broker.Options{Settings: groupSettings()})
	testenv.CreateTopic(t, b.Addr, "raw-groups", 2, nil)
	c := dialRaw(t, b.Addr)

	// FindCoordinator: single key (v3) and batched keys (v4+, KIP-699).
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKey = "raw"
	fcr := kmsg.NewPtrFindCoordinatorResponse()
	decodeInto(t, fcr, 3, c.request(fc, 3))
	wantCode(t, "find coordinator v3", fcr.ErrorCode, errNone)
	if fcr.NodeID != 0 || fcr.Port == 0 {
		t.Fatalf("find coordinator v3: %+v", fcr)
	}
	fc = kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKeys = []string{"raw", "other"}
	fcr = kmsg.NewPtrFindCoordinatorResponse()
	decodeInto(t, fcr, 4, c.request(fc, 4))
	if len(fcr.Coordinators) != 2 || fcr.Coordinators[1].Key != "other" || fcr.Coordinators[1].ErrorCode != 0 {
		t.Fatalf("find coordinator v4: %+v", fcr.Coordinators)
	}
	fc = kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKeys, fc.CoordinatorType = []string{"txn"}, 1
	fcr = kmsg.NewPtrFindCoordinatorResponse()
	decodeInto(t, fcr, 4, c.request(fc, 4))
	if fcr.Coordinators[0].ErrorCode != 0 || fcr.Coordinators[0].NodeID != 0 {
		t.Fatalf("transaction coordinator (this node, transactions exist): %+v", fcr.Coordinators[0])
	}

	// Clients cannot write the internal topic.
	wantCode(t, "produce to __consumer_offsets", produceRaw(t, c, "__consumer_offsets", 0, nil).ErrorCode, kerr.InvalidTopicException)

	join := func(member string, session int32) *kmsg.JoinGroupResponse {
		t.Helper()
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.MemberID, req.ProtocolType = "raw", member, "consumer"
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = session, 5000
		p := kmsg.NewJoinGroupRequestProtocol()
		meta := kmsg.NewConsumerMemberMetadata()
		meta.Topics = []string{"raw-groups"}
		p.Name, p.Metadata = "range", meta.AppendTo(nil)
		req.Protocols = append(req.Protocols, p)
		resp := kmsg.NewPtrJoinGroupResponse()
		decodeInto(t, resp, 9, c.request(req, 9))
		return resp
	}
	wantCode(t, "join with a session below group.min.session.timeout.ms", join("", 10).ErrorCode, kerr.InvalidSessionTimeout)
	first := join("", 3000)
	wantCode(t, "first join (KIP-394)", first.ErrorCode, kerr.MemberIDRequired)
	if first.MemberID == "" {
		t.Fatal("MEMBER_ID_REQUIRED without a member id")
	}
	wantCode(t, "join with a made-up member id", join("nobody", 3000).ErrorCode, kerr.UnknownMemberID)
	j := join(first.MemberID, 3000)
	wantCode(t, "second join", j.ErrorCode, errNone)
	if j.Generation != 1 || j.LeaderID != first.MemberID || len(j.Members) != 1 || *j.Protocol != "range" {
		t.Fatalf("join response: %+v", j)
	}

	sync := func(gen int32) *kmsg.SyncGroupResponse {
		req := kmsg.NewPtrSyncGroupRequest()
		req.Group, req.MemberID, req.Generation = "raw", first.MemberID, gen
		req.ProtocolType, req.Protocol = kmsg.StringPtr("consumer"), kmsg.StringPtr("range")
		a := kmsg.NewSyncGroupRequestGroupAssignment()
		a.MemberID, a.MemberAssignment = first.MemberID, []byte{0, 0, 0, 0, 0, 0, 0, 0}
		req.GroupAssignment = append(req.GroupAssignment, a)
		resp := kmsg.NewPtrSyncGroupResponse()
		decodeInto(t, resp, 5, c.request(req, 5))
		return resp
	}
	wantCode(t, "sync with a wrong generation", sync(9).ErrorCode, kerr.IllegalGeneration)
	wantCode(t, "sync", sync(1).ErrorCode, errNone)

	hb := func(member string, gen int32) int16 {
		req := kmsg.NewPtrHeartbeatRequest()
		req.Group, req.MemberID, req.Generation = "raw", member, gen
		resp := kmsg.NewPtrHeartbeatResponse()
		decodeInto(t, resp, 4, c.request(req, 4))
		return resp.ErrorCode
	}
	wantCode(t, "heartbeat", hb(first.MemberID, 1), errNone)
	wantCode(t, "heartbeat with a wrong generation", hb(first.MemberID, 2), kerr.IllegalGeneration)
	wantCode(t, "heartbeat of an unknown member", hb("nobody", 1), kerr.UnknownMemberID)

	commit := func(member string, gen int32) int16 {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.MemberID, req.Generation = "raw", member, gen
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = "raw-groups"
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = 1, 33
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := kmsg.NewPtrOffsetCommitResponse()
		decodeInto(t, resp, 8, c.request(req, 8))
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	wantCode(t, "admin commit to a group with members", commit("", -1), kerr.UnknownMemberID)
	wantCode(t, "commit with a stale generation", commit(first.MemberID, 0), kerr.IllegalGeneration)
	wantCode(t, "member commit", commit(first.MemberID, 1), errNone)

	// Multi-group OffsetFetch (v8, KIP-709).
	of := kmsg.NewPtrOffsetFetchRequest()
	for _, g := range []string{"raw", "unknown"} {
		rg := kmsg.NewOffsetFetchRequestGroup()
		rg.Group = g
		of.Groups = append(of.Groups, rg)
	}
	ofr := kmsg.NewPtrOffsetFetchResponse()
	decodeInto(t, ofr, 8, c.request(of, 8))
	if len(ofr.Groups) != 2 || len(ofr.Groups[0].Topics) != 1 || ofr.Groups[0].Topics[0].Partitions[0].Offset != 33 || len(ofr.Groups[1].Topics) != 0 {
		t.Fatalf("offset fetch v8: %+v", ofr.Groups)
	}

	// LeaveGroup (batched, v5) empties the group.
	lv := kmsg.NewPtrLeaveGroupRequest()
	lv.Group = "raw"
	m := kmsg.NewLeaveGroupRequestMember()
	m.MemberID = first.MemberID
	lv.Members = append(lv.Members, m)
	lvr := kmsg.NewPtrLeaveGroupResponse()
	decodeInto(t, lvr, 5, c.request(lv, 5))
	if lvr.ErrorCode != 0 || len(lvr.Members) != 1 || lvr.Members[0].ErrorCode != 0 {
		t.Fatalf("leave: %+v", lvr)
	}
	wantCode(t, "heartbeat after leaving", hb(first.MemberID, 1), kerr.UnknownMemberID)
	wantCode(t, "admin commit to the emptied group", commit("", -1), errNone)

	dg := kmsg.NewPtrDescribeGroupsRequest()
	dg.Groups = []string{"raw", "missing"}
	dgr := kmsg.NewPtrDescribeGroupsResponse()
	decodeInto(t, dgr, 6, c.request(dg, 6))
	if dgr.Groups[0].State != "Empty" || dgr.Groups[1].ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("describe v6: %+v", dgr.Groups)
	}
}

var errNone = &kerr.Error{Message: "NONE", Code: 0}
