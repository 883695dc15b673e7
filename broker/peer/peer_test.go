package peer_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/broker/peer"
	"github.com/strata-broker/strata/testenv"
)

// TestRequestsToARealBroker sends flexible and non-flexible requests to a
// Strata broker and decodes the answers, as brokers do to each other.
func TestRequestsToARealBroker(t *testing.T) {
	b := testenv.StartBroker(t, broker.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := peer.Dial(ctx, b.Addr, "broker-1-test")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	av := kmsg.NewPtrApiVersionsRequest()
	av.SetVersion(3)
	av.ClientSoftwareName, av.ClientSoftwareVersion = "strata", "test"
	resp, err := c.Do(ctx, av)
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.(*kmsg.ApiVersionsResponse); r.ErrorCode != 0 || len(r.ApiKeys) == 0 {
		t.Fatalf("ApiVersions: %+v", r)
	}

	for _, v := range []int16{4, 12} { // v4 classic, v9+ flexible
		md := kmsg.NewPtrMetadataRequest()
		md.SetVersion(v)
		resp, err := c.Do(ctx, md)
		if err != nil {
			t.Fatalf("Metadata v%d: %v", v, err)
		}
		if r := resp.(*kmsg.MetadataResponse); len(r.Brokers) != 1 {
			t.Fatalf("Metadata v%d brokers: %+v", v, r.Brokers)
		}
	}

	// A request the broker refuses by closing the connection fails the
	// call, and the connection is not used again.
	bad := kmsg.NewPtrMetadataRequest()
	bad.SetVersion(99)
	if _, err := c.Do(ctx, bad); err == nil {
		t.Fatal("an unsupported version did not fail")
	}
	if _, err := c.Do(ctx, av); err == nil {
		t.Fatal("a dead connection was reused")
	}
}
