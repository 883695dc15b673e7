package broker

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// AlterConfigs, versions 0–2.
//
// The legacy form: the request's configs REPLACE all of a topic's overrides
// (anything not named goes back to its default), as in Kafka. Broker configs
// are static in Strata (set at start); altering them is refused.
func init() { register(kmsg.AlterConfigs, 0, 2, handleAlterConfigs) }

func handleAlterConfigs(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.AlterConfigsRequest)
	if resp, handled := c.forwardAdmin(h, kreq); handled {
		return resp, nil
	}
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	for _, rr := range req.Resources {
		sr := kmsg.NewAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		next := map[string]string{}
		for _, kv := range rr.Configs {
			if kv.Value != nil {
				next[kv.Name] = *kv.Value
			}
		}
		ec, msg := c.b.applyTopicConfigs(rr.ResourceType, rr.ResourceName, req.ValidateOnly, func(map[string]string) (map[string]string, error) {
			return next, nil
		})
		sr.ErrorCode = ec.Code
		if msg != "" {
			sr.ErrorMessage = &msg
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp, nil
}

// applyTopicConfigs computes a topic's new overrides with change, validates
// them and stores them (unless validateOnly). The new values take effect on
// the topic's logs at once (next roll decision, next produce check).
func (b *Broker) applyTopicConfigs(rt kmsg.ConfigResourceType, name string, validateOnly bool, change func(cur map[string]string) (map[string]string, error)) (*kerr.Error, string) {
	switch rt {
	case kmsg.ConfigResourceTypeTopic:
	case kmsg.ConfigResourceTypeBroker:
		return kerr.InvalidRequest, "broker configs are static in Strata; set them at start (-c name=value)"
	default:
		return kerr.InvalidRequest, fmt.Sprintf("resource type %v is not supported", rt)
	}
	for attempt := 0; ; attempt++ {
		t := b.topics.get(name)
		if t == nil {
			return kerr.UnknownTopicOrPartition, fmt.Sprintf("topic %q does not exist", name)
		}
		cur := map[string]string{}
		for k, v := range t.meta.Configs {
			cur[k] = v
		}
		next, err := change(cur)
		if err != nil {
			return kerr.InvalidConfig, err.Error()
		}
		if err := validateTopicConfigs(next); err != nil {
			return kerr.InvalidConfig, err.Error()
		}
		if _, was := cur["message.format.version"]; !was {
			warnDeprecatedConfigs(b.log, name, next)
		}
		if t.cfg.remoteStorage && next["remote.storage.enable"] != "true" && next["remote.log.delete.on.disable"] != "true" {
			// KIP-950 (Kafka 3.9): turning tiered storage off deletes the
			// remote data, so it must be asked for explicitly.
			return kerr.InvalidConfig, "turning remote.storage.enable off deletes the topic's remote data: set remote.log.delete.on.disable=true as well"
		}
		if validateOnly {
			return errNone, ""
		}
		err = b.topics.setConfigs(b.ctx, name, next)
		if err == nil {
			b.log.Info("altered topic configs", "topic", name, "configs", next)
			return errNone, ""
		}
		if attempt >= 3 {
			b.log.Error("alter configs failed", "topic", name, "err", err)
			return kerr.UnknownServerError, err.Error()
		}
	}
}
