package testenv

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// TestMinIO starts MinIO, stores and reads back an object with minio-go, and
// checks that Stop/Start keeps the data and the address.
func TestMinIO(t *testing.T) {
	m := StartMinIO(t)
	m.CreateBucket(t, "testenv")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	data := []byte("hello from testenv")
	if _, err := m.Client().PutObject(ctx, "testenv", "a/b", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	read := func() ([]byte, error) {
		obj, err := m.Client().GetObject(ctx, "testenv", "a/b", minio.GetObjectOptions{})
		if err != nil {
			return nil, err
		}
		defer obj.Close()
		return io.ReadAll(obj)
	}
	if got, err := read(); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %q, %v", got, err)
	}

	m.Stop()
	sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
	defer scancel()
	if err := httpOK(sctx, m.Endpoint+"/minio/health/live"); err == nil {
		t.Fatal("MinIO still answers after Stop")
	}
	m.Start()
	if got, err := read(); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get after restart: %q, %v", got, err)
	}
}
