package remotestore

import (
	"context"
	"io"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Object-store requests are what a cloud bill charges for (S3 prices PUT,
// COPY, POST and LIST per thousand, GET and HEAD per ten thousand), so
// tiering reports them per segment copied and per GiB replayed.

// RequestCounts is a snapshot of Counters.
type RequestCounts struct {
	Put    int64 // PutObject, and each CreateMultipartUpload, UploadPart and CompleteMultipartUpload
	Get    int64 // GetObject
	Head   int64 // HeadObject and HeadBucket
	List   int64 // ListObjectsV2 pages
	Delete int64 // DeleteObjects batches and AbortMultipartUpload
}

// Total is the sum of all requests.
func (c RequestCounts) Total() int64 { return c.Put + c.Get + c.Head + c.List + c.Delete }

// Sub returns c - o, the requests made between two snapshots.
func (c RequestCounts) Sub(o RequestCounts) RequestCounts {
	return RequestCounts{
		Put:    c.Put - o.Put,
		Get:    c.Get - o.Get,
		Head:   c.Head - o.Head,
		List:   c.List - o.List,
		Delete: c.Delete - o.Delete,
	}
}

// requestKind indexes Counters.n.
type requestKind int

const (
	reqPut requestKind = iota
	reqGet
	reqHead
	reqList
	reqDelete
	numRequestKinds
)

var requestKindNames = [numRequestKinds]string{"put", "get", "head", "list", "delete"}

// Counters counts object-store requests. It is a prometheus.Collector
// (strata_remote_requests_total{op="put|get|head|list|delete"}); register it
// where the broker registers its metrics. The zero value is ready to use.
type Counters struct {
	n [numRequestKinds]atomic.Int64
}

var countersDesc = prometheus.NewDesc(
	"strata_remote_requests_total",
	"Requests made to the remote object store, by kind (what the bill charges for).",
	[]string{"op"}, nil)

func (c *Counters) add(k requestKind, n int64) { c.n[k].Add(n) }

// Snapshot returns the counts so far.
func (c *Counters) Snapshot() RequestCounts {
	return RequestCounts{
		Put:    c.n[reqPut].Load(),
		Get:    c.n[reqGet].Load(),
		Head:   c.n[reqHead].Load(),
		List:   c.n[reqList].Load(),
		Delete: c.n[reqDelete].Load(),
	}
}

// Describe implements prometheus.Collector.
func (c *Counters) Describe(ch chan<- *prometheus.Desc) { ch <- countersDesc }

// Collect implements prometheus.Collector.
func (c *Counters) Collect(ch chan<- prometheus.Metric) {
	for k := range numRequestKinds {
		ch <- prometheus.MustNewConstMetric(countersDesc, prometheus.CounterValue, float64(c.n[k].Load()), requestKindNames[k])
	}
}

// wireCounter is implemented by stores that can count the requests they
// really send — S3 counts every HTTP attempt, including multipart parts, list
// pages and retries — rather than one per call.
type wireCounter interface {
	countRequests(c *Counters)
}

// counting is the request-counting wrapper.
type counting struct {
	inner Storage
	c     *Counters
	wire  bool // inner counts its own wire requests into c
}

var _ Storage = (*counting)(nil)

// WithCounters returns s with its requests counted in c. A store that talks
// to a server (S3) counts the HTTP requests it sends, retries and multipart
// parts included; any other store counts one request per call (a List, one
// LIST; a Delete, one DELETE per 1000 keys, as S3 would). Wrap a store once.
func WithCounters(s Storage, c *Counters) Storage {
	w := &counting{inner: s, c: c}
	// Look through wrappers (the prefix one) for a store that counts itself.
	for inner := s; inner != nil; {
		if wc, ok := inner.(wireCounter); ok {
			wc.countRequests(c)
			w.wire = true
			break
		}
		u, ok := inner.(interface{ Unwrap() Storage })
		if !ok {
			break
		}
		inner = u.Unwrap()
	}
	return w
}

func (w *counting) count(k requestKind, n int64) {
	if !w.wire {
		w.c.add(k, n)
	}
}

func (w *counting) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	w.count(reqPut, 1)
	return w.inner.Put(ctx, key, r, size)
}

func (w *counting) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	w.count(reqPut, 1)
	return w.inner.PutIfAbsent(ctx, key, r, size)
}

func (w *counting) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	w.count(reqGet, 1)
	return w.inner.Get(ctx, key, offset, length)
}

func (w *counting) Head(ctx context.Context, key string) (ObjectInfo, error) {
	w.count(reqHead, 1)
	return w.inner.Head(ctx, key)
}

func (w *counting) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	w.count(reqList, 1)
	return w.inner.List(ctx, prefix)
}

func (w *counting) Delete(ctx context.Context, keys ...string) error {
	w.count(reqDelete, int64(max(1, (len(keys)+maxDeleteBatch-1)/maxDeleteBatch)))
	return w.inner.Delete(ctx, keys...)
}

func (w *counting) Check(ctx context.Context) error {
	w.count(reqHead, 1)
	return w.inner.Check(ctx)
}

func (w *counting) Close() error { return w.inner.Close() }

// Unwrap returns the wrapped store.
func (w *counting) Unwrap() Storage { return w.inner }
