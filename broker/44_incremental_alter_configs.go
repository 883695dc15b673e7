package broker

import (
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// IncrementalAlterConfigs, versions 0–1 (KIP-339).
//
// SET, DELETE (back to default), APPEND and SUBTRACT (for list configs such as
// cleanup.policy) on a topic's overrides; everything not named is kept.
func init() { register(kmsg.IncrementalAlterConfigs, 0, 1, handleIncrementalAlterConfigs) }

func handleIncrementalAlterConfigs(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.IncrementalAlterConfigsRequest)
	if resp, handled := c.forwardAdmin(h, kreq); handled {
		return resp, nil
	}
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	for _, rr := range req.Resources {
		sr := kmsg.NewIncrementalAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		ec, msg := c.b.applyTopicConfigs(rr.ResourceType, rr.ResourceName, req.ValidateOnly, func(cur map[string]string) (map[string]string, error) {
			return incrementalChange(c.b, rr.ResourceName, cur, rr.Configs)
		})
		sr.ErrorCode = ec.Code
		if msg != "" {
			sr.ErrorMessage = &msg
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp, nil
}

func incrementalChange(b *Broker, topicName string, cur map[string]string, ops []kmsg.IncrementalAlterConfigsRequestResourceConfig) (map[string]string, error) {
	t := b.topics.get(topicName)
	for _, op := range ops {
		def, ok := topicConfigByName[op.Name]
		if !ok {
			return nil, fmt.Errorf("unknown topic config name: %s", op.Name)
		}
		val := ""
		if op.Value != nil {
			val = *op.Value
		}
		switch op.Op {
		case kmsg.IncrementalAlterConfigOpSet:
			if op.Value == nil {
				return nil, fmt.Errorf("null value for %s", op.Name)
			}
			cur[op.Name] = val
		case kmsg.IncrementalAlterConfigOpDelete:
			delete(cur, op.Name)
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			if def.typ != typeList {
				return nil, fmt.Errorf("%s is not a list config; APPEND/SUBTRACT need one", op.Name)
			}
			existing := cur[op.Name]
			if _, ok := cur[op.Name]; !ok && t != nil {
				existing = t.cfg.raw[op.Name]
			}
			items := splitList(existing)
			if op.Op == kmsg.IncrementalAlterConfigOpAppend {
				for _, v := range splitList(val) {
					if !contains(items, v) {
						items = append(items, v)
					}
				}
			} else {
				var kept []string
				drop := splitList(val)
				for _, v := range items {
					if !contains(drop, v) {
						kept = append(kept, v)
					}
				}
				items = kept
			}
			cur[op.Name] = strings.Join(items, ",")
		default:
			return nil, fmt.Errorf("unknown operation %d for %s", op.Op, op.Name)
		}
	}
	return cur, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
