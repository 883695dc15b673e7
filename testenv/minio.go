package testenv

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Fixed credentials of every test MinIO.
const (
	MinIOAccessKey = "strata-test"
	MinIOSecretKey = "strata-test-secret"
	MinIORegion    = "us-east-1"
)

// MinIO is a real MinIO server (single drive, in a temporary directory) on a
// loopback port, built by scripts/install-tools.sh.
type MinIO struct {
	Endpoint  string // http://127.0.0.1:port
	Addr      string // 127.0.0.1:port
	AccessKey string
	SecretKey string
	Region    string
	DataDir   string

	t      testing.TB
	proc   *serverProc
	client *minio.Client
}

// StartMinIO starts a MinIO server for the test and kills it at cleanup.
// Without the binary it skips (fails under CI); see toolBinary.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	bin := toolBinary(t, "minio", "STRATA_MINIO_BIN", "github.com/minio/minio")
	dir := t.TempDir()
	var m *MinIO
	var addr string
	_, err := startOnFreePorts(t, func() *serverProc {
		addr = "127.0.0.1:" + strconv.Itoa(freePort(t))
		consoleAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		m = &MinIO{
			Endpoint:  "http://" + addr,
			Addr:      addr,
			AccessKey: MinIOAccessKey,
			SecretKey: MinIOSecretKey,
			Region:    MinIORegion,
			DataDir:   filepath.Join(dir, "data"),
			t:         t,
		}
		m.proc = &serverProc{
			t:    t,
			name: "minio",
			bin:  bin,
			args: []string{"server", m.DataDir,
				"--address", addr,
				"--console-address", consoleAddr,
				"--certs-dir", filepath.Join(dir, "certs"), // not ~/.minio
				"--quiet"},
			env: []string{
				"MINIO_ROOT_USER=" + m.AccessKey,
				"MINIO_ROOT_PASSWORD=" + m.SecretKey,
				"MINIO_REGION=" + m.Region,
				"MINIO_BROWSER=off",
				"MINIO_UPDATE=off",
			},
			ready: m.ready,
		}
		return m.proc
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.proc.stop)
	client, err := minio.New(addr, &minio.Options{
		Creds:  credentials.NewStaticV4(m.AccessKey, m.SecretKey, ""),
		Region: m.Region,
	})
	if err != nil {
		t.Fatal(err)
	}
	m.client = client
	return m
}

// Client is a minio-go client with the server's root credentials, for test
// setup and for checking what landed in a bucket independently of the code
// under test.
func (m *MinIO) Client() *minio.Client { return m.client }

// CreateBucket creates a bucket (S3 names: lower-case, 3-63 characters).
func (m *MinIO) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.client.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: m.Region}); err != nil {
		t.Fatalf("creating bucket %s: %v", name, err)
	}
}

// URL is the --remote URL for bucket/prefix on this server. Credentials are
// not in it: use SetAWSEnv (or S3Options.Credentials).
func (m *MinIO) URL(bucket, prefix string) string {
	q := url.Values{"endpoint": {m.Endpoint}, "region": {m.Region}, "path_style": {"true"}}
	return fmt.Sprintf("s3://%s/%s?%s", bucket, prefix, q.Encode())
}

// SetAWSEnv sets the standard AWS environment to this server's credentials
// for the rest of the test (so the SDK's default chain finds them), and
// points the shared config files at nothing so a developer's ~/.aws cannot
// interfere.
func (m *MinIO) SetAWSEnv(t testing.TB) {
	t.Setenv("AWS_ACCESS_KEY_ID", m.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", m.SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_REGION", m.Region)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(m.DataDir, "..", "no-aws-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(m.DataDir, "..", "no-aws-credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// Stop kills the server (SIGKILL), as an outage would. Its data stays.
func (m *MinIO) Stop() { m.proc.stop() }

// Start starts a stopped server again with the same data and address, and
// waits until it is ready.
func (m *MinIO) Start() {
	m.t.Helper()
	if err := m.proc.start(60 * time.Second); err != nil {
		m.t.Fatal(err)
	}
}

// ready succeeds once MinIO reports ready and its IAM subsystem is up. The
// health check passes before IAM has loaded, and until it has, requests
// signed with any key but the root one get 503 "server not initialized"
// rather than 403 — which would make a wrong-credentials test flaky. So also
// send a request with an unknown access key and wait for the 403.
func (m *MinIO) ready(ctx context.Context) error {
	if err := httpOK(ctx, m.Endpoint+"/minio/health/ready"); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.Endpoint+"/strata-readiness-probe", nil)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	req.Header.Set("X-Amz-Date", now.Format("20060102T150405Z"))
	req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=strata-probe-unknown/"+now.Format("20060102")+
		"/"+m.Region+"/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=00")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		return fmt.Errorf("a request with an unknown key got %s, not 403 (IAM not initialized yet)", resp.Status)
	}
	return nil
}

// httpOK succeeds when GET url answers 200.
func httpOK(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
