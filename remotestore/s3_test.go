package remotestore_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-broker/strata/remotestore"
	"github.com/strata-broker/strata/testenv"
)

// fastFail makes a store give up quickly: one retry, 10 ms apart.
func fastFail(o *remotestore.S3Options) {
	o.MaxAttempts = 2
	o.MaxBackoff = 10 * time.Millisecond
	o.DialTimeout = time.Second
}

// TestS3Misconfigured checks that the three classic mistakes — wrong
// credentials, a bucket that does not exist, an endpoint nobody listens on —
// come back quickly as errors that say which one it is.
func TestS3Misconfigured(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.CreateBucket(t, "exists")
	ctx := ctxT(t)

	t.Run("BadCredentials", func(t *testing.T) {
		s := newMinIOStore(t, m, "exists", func(o *remotestore.S3Options) {
			o.Credentials = credentials.NewStaticCredentialsProvider("nobody", "wrong-secret", "")
			fastFail(o)
		})
		for name, err := range map[string]error{
			"check": s.Check(ctx),
			"put":   s.Put(ctx, "k", strings.NewReader("x"), 1),
		} {
			if err == nil || !strings.Contains(err.Error(), "access denied") || !strings.Contains(err.Error(), "credentials") {
				t.Errorf("%s with bad credentials: %v", name, err)
			}
		}
	})
	t.Run("MissingBucket", func(t *testing.T) {
		s := newMinIOStore(t, m, "no-such-bucket", fastFail)
		for name, err := range map[string]error{
			"check": s.Check(ctx),
			"put":   s.Put(ctx, "k", strings.NewReader("x"), 1),
		} {
			if err == nil || !strings.Contains(err.Error(), `bucket "no-such-bucket" does not exist`) {
				t.Errorf("%s on a missing bucket: %v", name, err)
			}
		}
		if _, err := s.List(ctx, ""); err == nil || errors.Is(err, remotestore.ErrNotFound) || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("list on a missing bucket: %v", err)
		}
	})
	t.Run("Unreachable", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close() // nobody listens there now
		s, err := remotestore.NewS3(remotestore.S3Options{
			Bucket:      "exists",
			Endpoint:    "http://" + addr,
			PathStyle:   true,
			Credentials: credentials.NewStaticCredentialsProvider(m.AccessKey, m.SecretKey, ""),
			MaxAttempts: 2,
			MaxBackoff:  10 * time.Millisecond,
			DialTimeout: time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = s.Check(ctx)
		if err == nil || !strings.Contains(err.Error(), "cannot reach") || !strings.Contains(err.Error(), addr) {
			t.Fatalf("check of an unreachable endpoint: %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("took %v to fail", d)
		}
	})
	t.Run("Good", func(t *testing.T) {
		if err := newMinIOStore(t, m, "exists", nil).Check(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// TestS3Outage stops MinIO under the store: calls fail with an error (not a
// hang) while it is down, an interrupted multipart upload leaves no object,
// and everything works again once it is back.
func TestS3Outage(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.CreateBucket(t, "outage")
	s := newMinIOStore(t, m, "outage", fastFail)
	ctx := ctxT(t)

	put(t, s, "before", []byte("before"))

	// Stop MinIO in the middle of a multipart upload: after the first part.
	data := randomBytes(3*testPartSize, 7)
	pr, pw := io.Pipe()
	putErr := make(chan error, 1)
	go func() { putErr <- s.Put(ctx, "interrupted", onlyReader{pr}, int64(len(data))) }()
	if _, err := pw.Write(data[:testPartSize+1]); err != nil { // part 1 is read; part 2 has begun
		t.Fatal(err)
	}
	m.Stop()
	go func() {
		pw.Write(data[testPartSize+1:])
		pw.Close()
	}()
	select {
	case err := <-putErr:
		if err == nil {
			t.Fatal("a multipart upload with MinIO stopped mid-way succeeded")
		}
		t.Logf("interrupted upload: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("upload still running 30s after MinIO stopped")
	}
	pr.CloseWithError(errors.New("test over"))

	// Down: every call fails quickly, and not as ErrNotFound.
	down := map[string]error{"put": s.Put(ctx, "during", strings.NewReader("x"), 1)}
	_, down["get"] = s.Get(ctx, "before", 0, -1)
	_, down["head"] = s.Head(ctx, "before")
	_, down["list"] = s.List(ctx, "")
	down["delete"] = s.Delete(ctx, "before")
	down["check"] = s.Check(ctx)
	for op, err := range down {
		if err == nil || errors.Is(err, remotestore.ErrNotFound) || !strings.Contains(err.Error(), "cannot reach") {
			t.Errorf("%s with MinIO down: %v", op, err)
		}
	}

	m.Start()
	if got, err := get(t, s, "before", 0, -1); err != nil || !bytes.Equal(got, []byte("before")) {
		t.Fatalf("get after restart: %q, %v", got, err)
	}
	if _, err := s.Head(ctx, "interrupted"); !errors.Is(err, remotestore.ErrNotFound) {
		t.Fatalf("the interrupted upload left an object: %v", err)
	}
	if err := s.Put(ctx, "interrupted", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("put after restart: %v", err)
	}
	if got, ok := minioObject(t, m, "outage", "interrupted"); !ok || !bytes.Equal(got, data) {
		t.Fatalf("after restart the upload stored %d bytes (exists %v), want %d", len(got), ok, len(data))
	}
}

// TestOpenS3 opens a --remote URL the way the broker does: credentials from
// the standard AWS environment, keys under the URL's prefix.
func TestOpenS3(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.CreateBucket(t, "opened")
	m.SetAWSEnv(t)
	s, err := remotestore.Open(m.URL("opened", "prod/cluster-a"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := ctxT(t)
	if err := s.Check(ctx); err != nil {
		t.Fatal(err)
	}
	put(t, s, "topic/0/manifest", []byte("m"))
	if got, ok := minioObject(t, m, "opened", "prod/cluster-a/topic/0/manifest"); !ok || string(got) != "m" {
		t.Fatalf("object under the prefix: %q, %v", got, ok)
	}
	infos, err := s.List(ctx, "topic/")
	if err != nil || len(infos) != 1 || infos[0].Key != "topic/0/manifest" {
		t.Fatalf("list: %v, %v", infos, err)
	}

	// Without credentials in the environment the error says so.
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	loc, err := remotestore.ParseURL(m.URL("opened", ""))
	if err != nil {
		t.Fatal(err)
	}
	fastFail(&loc.S3)
	s2, err := loc.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.Check(ctx); err == nil || !strings.Contains(err.Error(), "credentials") {
		t.Fatalf("check without credentials: %v", err)
	}
}

// TestCountersPrometheus checks the Prometheus view of the counters.
func TestCountersPrometheus(t *testing.T) {
	s, err := remotestore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := new(remotestore.Counters)
	s = remotestore.WithCounters(s, c)
	put(t, s, "a", []byte("a"))
	get(t, s, "a", 0, -1)
	get(t, s, "a", 0, -1)
	if got := gatherCounter(t, c, "get"); got != 2 {
		t.Fatalf("get counter %v, want 2", got)
	}
	if got := gatherCounter(t, c, "put"); got != 1 {
		t.Fatalf("put counter %v, want 1", got)
	}
}

func gatherCounter(t *testing.T, c *remotestore.Counters, op string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "strata_remote_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "op" && l.GetValue() == op {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no strata_remote_requests_total{op=%q}", op)
	return 0
}
