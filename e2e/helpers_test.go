package e2e

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/testenv"
)

func newClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	return testenv.Client(t, addr, opts...)
}

func createTopic(t *testing.T, addr, name string, partitions int32, configs map[string]*string) {
	t.Helper()
	testenv.CreateTopic(t, addr, name, partitions, configs)
}

func readAll(t *testing.T, addr, topic string) []*kgo.Record {
	t.Helper()
	return testenv.ReadAll(t, addr, topic)
}
