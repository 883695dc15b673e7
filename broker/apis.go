package broker

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handler answers one decoded request. It returns a kmsg.Response, a
// *fetchReply (zero-copy fetch), or nil for "send nothing" (acks=0). A non-nil
// error closes the connection; Kafka failures travel as error codes inside the
// response instead.
type handler func(c *conn, h *reqHeader, req kmsg.Request) (any, error)

type apiInfo struct {
	min, max int16
	handle   handler
}

// apis is filled by each NN_name.go file's init, one line per API key.
var apis = map[int16]apiInfo{}

// register adds an API key's handler. Registering a key twice is a
// programming error that would silently drop a handler, so it panics at
// start, as kfake does.
func register(key kmsg.Key, min, max int16, h handler) {
	if _, dup := apis[key.Int16()]; dup {
		panic(fmt.Sprintf("broker: API key %d (%s) registered twice", key.Int16(), kmsg.NameForKey(key.Int16())))
	}
	apis[key.Int16()] = apiInfo{min: min, max: max, handle: h}
}

// errNone is Kafka's error code 0, so handlers can treat "no error" like any
// other *kerr.Error (kerr has no value for it).
var errNone = &kerr.Error{Message: "NONE", Code: 0}
