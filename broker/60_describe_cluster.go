package broker

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeCluster, versions 0–1 (KIP-700): cluster id, controller and brokers.
func init() { register(kmsg.DescribeCluster, 0, 1, handleDescribeCluster) }

func handleDescribeCluster(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.DescribeClusterRequest)
	b := c.b
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	resp.ClusterID = b.coord.ClusterID()
	resp.ControllerID, _ = b.coord.Controller()
	resp.EndpointType = 1
	resp.ClusterAuthorizedOperations = -2147483648
	brokers := b.topics.liveBrokers()
	for _, br := range brokers {
		rb := kmsg.NewDescribeClusterResponseBroker()
		rb.NodeID, rb.Host, rb.Port = br.NodeID, br.Host, br.Port
		if br.Rack != "" {
			r := br.Rack
			rb.Rack = &r
		}
		resp.Brokers = append(resp.Brokers, rb)
	}
	return resp, nil
}
