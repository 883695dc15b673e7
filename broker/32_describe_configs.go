package broker

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeConfigs, versions 0–4.
//
// Topic resources list every topic config with its effective value and
// source (topic override, static broker default, built-in default) and, v1+
// when asked, its synonyms; v3+ adds types and documentation. Broker resources
// (name = node id, or empty for cluster defaults) list the broker configs.
func init() { register(kmsg.DescribeConfigs, 0, 4, handleDescribeConfigs) }

func handleDescribeConfigs(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.DescribeConfigsRequest)
	b := c.b
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, rr := range req.Resources {
		sr := kmsg.NewDescribeConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		want := func(name string) bool {
			if rr.ConfigNames == nil {
				return true
			}
			for _, n := range rr.ConfigNames {
				if n == name {
					return true
				}
			}
			return false
		}
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			t := b.topics.get(rr.ResourceName)
			if t == nil {
				sr.ErrorCode = kerr.UnknownTopicOrPartition.Code
				msg := fmt.Sprintf("topic %q does not exist", rr.ResourceName)
				sr.ErrorMessage = &msg
				break
			}
			for _, d := range topicConfigDefs {
				if !want(d.name) {
					continue
				}
				sr.Configs = append(sr.Configs, b.describeTopicConfig(h.version, req.IncludeSynonyms, req.IncludeDocumentation, t, d))
			}
		case kmsg.ConfigResourceTypeBroker:
			if rr.ResourceName != "" && rr.ResourceName != strconv.Itoa(int(b.opts.NodeID)) {
				sr.ErrorCode = kerr.InvalidRequest.Code
				msg := fmt.Sprintf("broker %q is not this broker (%d)", rr.ResourceName, b.opts.NodeID)
				sr.ErrorMessage = &msg
				break
			}
			for _, bc := range b.brokerConfigList() {
				if !want(bc.Name) {
					continue
				}
				sr.Configs = append(sr.Configs, bc)
			}
		default:
			sr.ErrorCode = kerr.InvalidRequest.Code
			msg := fmt.Sprintf("resource type %v is not supported", rr.ResourceType)
			sr.ErrorMessage = &msg
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp, nil
}

func (b *Broker) describeTopicConfig(version int16, synonyms, docs bool, t *topic, d topicConfigDef) kmsg.DescribeConfigsResponseResourceConfig {
	rc := kmsg.NewDescribeConfigsResponseResourceConfig()
	rc.Name = d.name
	v := t.cfg.raw[d.name]
	rc.Value = &v
	src := t.cfg.source[d.name]
	rc.Source = kmsg.ConfigSource(src)
	rc.IsDefault = src == sourceDefault
	rc.ConfigType = kmsg.ConfigType(d.typ)
	if docs {
		doc := d.doc
		rc.Documentation = &doc
	}
	if synonyms && version >= 1 {
		add := func(name, value string, s configSource) {
			sy := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
			sy.Name, sy.Source = name, kmsg.ConfigSource(s)
			sy.Value = &value
			rc.ConfigSynonyms = append(rc.ConfigSynonyms, sy)
		}
		if tv, ok := t.meta.Configs[d.name]; ok {
			add(d.name, tv, sourceTopic)
		}
		if bv, ok := b.settings.raw[d.brokerSynonym]; ok && d.brokerSynonym != "" {
			add(d.brokerSynonym, bv, sourceStaticBroker)
		}
		if d.brokerSynonym != "" {
			add(d.brokerSynonym, d.def, sourceDefault)
		}
	}
	return rc
}

// brokerConfigList reports broker configs: the typed ones, then any other
// setting given at start (topic defaults such as log.segment.bytes).
func (b *Broker) brokerConfigList() []kmsg.DescribeConfigsResponseResourceConfig {
	var out []kmsg.DescribeConfigsResponseResourceConfig
	seen := map[string]bool{}
	add := func(name, value string, src configSource, typ configType) {
		rc := kmsg.NewDescribeConfigsResponseResourceConfig()
		rc.Name = name
		v := value
		rc.Value = &v
		rc.Source = kmsg.ConfigSource(src)
		rc.IsDefault = src == sourceDefault
		rc.ReadOnly = true
		rc.ConfigType = kmsg.ConfigType(typ)
		out = append(out, rc)
		seen[name] = true
	}
	add("node.id", strconv.Itoa(int(b.opts.NodeID)), sourceStaticBroker, typeInt)
	add("log.dirs", b.opts.DataDir, sourceStaticBroker, typeString)
	add(remoteStatusConfig, b.remoteStatus(), sourceStaticBroker, typeString)
	for _, d := range brokerConfigDefs {
		if v, ok := b.settings.raw[d.name]; ok {
			add(d.name, v, sourceStaticBroker, d.typ)
		} else {
			add(d.name, d.def, sourceDefault, d.typ)
		}
	}
	for _, d := range topicConfigDefs {
		if d.brokerSynonym == "" || seen[d.brokerSynonym] {
			continue
		}
		if v, ok := b.settings.raw[d.brokerSynonym]; ok {
			add(d.brokerSynonym, v, sourceStaticBroker, d.typ)
		} else {
			add(d.brokerSynonym, d.def, sourceDefault, d.typ)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
