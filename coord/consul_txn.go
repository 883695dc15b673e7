package coord

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/consul/api"
)

// maxTxnOps is Consul's limit on operations in one transaction.
const maxTxnOps = 64

func kvOp(verb api.KVOp, key string) *api.KVTxnOp { return &api.KVTxnOp{Verb: verb, Key: key} }

func txnOp(o *api.KVTxnOp) *api.TxnOp { return &api.TxnOp{KV: o} }

// opCheckSession fails the transaction unless key is held by sid.
func opCheckSession(key, sid string) *api.TxnOp {
	o := kvOp(api.KVCheckSession, key)
	o.Session = sid
	return txnOp(o)
}

func opCheckNotExists(key string) *api.TxnOp { return txnOp(kvOp(api.KVCheckNotExists, key)) }

func opCheckIndex(key string, index uint64) *api.TxnOp {
	o := kvOp(api.KVCheckIndex, key)
	o.Index = index
	return txnOp(o)
}

// opCAS writes key if its ModifyIndex is index (0: if it does not exist).
func opCAS(key string, index uint64, value []byte) *api.TxnOp {
	o := kvOp(api.KVCAS, key)
	o.Index, o.Value = index, value
	return txnOp(o)
}

func opSet(key string, value []byte) *api.TxnOp {
	o := kvOp(api.KVSet, key)
	o.Value = value
	return txnOp(o)
}

func opLock(key string, value []byte, sid string) *api.TxnOp {
	o := kvOp(api.KVLock, key)
	o.Value, o.Session = value, sid
	return txnOp(o)
}

func opDelete(key string) *api.TxnOp { return txnOp(kvOp(api.KVDelete, key)) }

func opDeleteCAS(key string, index uint64) *api.TxnOp {
	o := kvOp(api.KVDeleteCAS, key)
	o.Index = index
	return txnOp(o)
}

func opDeleteTree(prefix string) *api.TxnOp { return txnOp(kvOp(api.KVDeleteTree, prefix)) }

// txn runs one transaction. ok is false when Consul rolled it back (a check
// failed; resp.Errors says which); err is set when it could not be run.
func (c *Consul) txn(ctx context.Context, what string, ops api.TxnOps) (bool, *api.TxnResponse, error) {
	if len(ops) > maxTxnOps {
		return false, nil, fmt.Errorf("coord: %s: %d operations in one consul transaction", what, len(ops))
	}
	cctx, cancel := c.callCtx(ctx)
	defer cancel()
	ok, resp, _, err := c.client.Txn().Txn(ops, (&api.QueryOptions{}).WithContext(cctx))
	if err != nil {
		return false, nil, c.callErr(ctx, what, err)
	}
	return ok, resp, nil
}

// callErr wraps a failed Consul call: the caller's own cancellation as
// such, Close as ErrClosed, anything else as ErrConsulUnavailable.
func (c *Consul) callErr(ctx context.Context, what string, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("coord: %s: %w", what, ctx.Err())
	case c.ctx.Err() != nil:
		return ErrClosed
	}
	return unavailable(what, err)
}

// failedAt says whether operation i failed.
func failedAt(resp *api.TxnResponse, i int) bool {
	if resp == nil {
		return false
	}
	for _, e := range resp.Errors {
		if e.OpIndex == i {
			return true
		}
	}
	return false
}

// sessionInvalid says whether a lock failed because its session no longer
// exists (Consul: `invalid session "..."`).
func sessionInvalid(resp *api.TxnResponse) bool {
	for _, e := range resp.Errors {
		if strings.Contains(e.What, "invalid session") {
			return true
		}
	}
	return false
}

// lockDelayed says whether a lock failed because the key's lock delay runs
// (Consul: "failed to lock key ... due to lock delay").
func lockDelayed(resp *api.TxnResponse) bool {
	for _, e := range resp.Errors {
		if strings.Contains(e.What, "lock delay") {
			return true
		}
	}
	return false
}

// resultFor is the last result for key: what the transaction left there
// (without the value; Consul returns values only for reads).
func resultFor(resp *api.TxnResponse, key string) *api.KVPair {
	var r *api.KVPair
	for _, res := range resp.Results {
		if res != nil && res.KV != nil && res.KV.Key == key {
			r = res.KV
		}
	}
	return r
}

func txnErrors(resp *api.TxnResponse) string {
	if resp == nil {
		return ""
	}
	var b strings.Builder
	for i, e := range resp.Errors {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "op %d: %s", e.OpIndex, e.What)
	}
	return b.String()
}
