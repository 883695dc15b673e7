package broker

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ApiVersions, versions 0–4.
//
// Lists every API key with the version range we handle. v3+ is flexible and
// carries the client's software name/version (KIP-511), which we log at debug.
// A request of a version above our maximum is answered (in conn.go) with a v0
// response holding UNSUPPORTED_VERSION and our ranges, so the client retries
// with a version both sides know, as Kafka does.
func init() { register(kmsg.ApiVersions, 0, 4, handleApiVersions) }

func handleApiVersions(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.ApiVersionsRequest)
	resp := apiVersionsResponse()
	if h.version >= 3 && (req.ClientSoftwareName != "" || req.ClientSoftwareVersion != "") {
		c.log.Debug("client software", "name", req.ClientSoftwareName, "version", req.ClientSoftwareVersion)
	}
	return resp, nil
}

func apiVersionsResponse() *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	keys := make([]int, 0, len(apis))
	for k := range apis {
		keys = append(keys, int(k))
	}
	sort.Ints(keys)
	for _, k := range keys {
		a := apis[int16(k)]
		v := kmsg.NewApiVersionsResponseApiKey()
		v.ApiKey, v.MinVersion, v.MaxVersion = int16(k), a.min, a.max
		resp.ApiKeys = append(resp.ApiKeys, v)
	}
	return resp
}

func unsupportedApiVersionsResponse() *kmsg.ApiVersionsResponse {
	resp := apiVersionsResponse()
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	return resp
}
