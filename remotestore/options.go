package remotestore

import (
	"fmt"
	"net/url"
	"regexp"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// S3Options configures the S3 implementation. The zero value plus a Bucket
// works against AWS with the standard credential chain; call EnsureDefaults
// to fill in the rest (NewS3 does).
type S3Options struct {
	Bucket string
	// Region; empty takes it from the AWS chain (AWS_REGION, profile), and
	// with an Endpoint and no region anywhere, us-east-1.
	Region string
	// Endpoint overrides AWS's endpoint, e.g. http://127.0.0.1:9000 for MinIO.
	Endpoint string
	// PathStyle addresses the bucket as endpoint/bucket/key rather than
	// bucket.endpoint/key; MinIO needs it.
	PathStyle bool
	// Credentials overrides the standard chain (environment, shared
	// config/credentials files, SSO, web identity, ECS/EC2 roles).
	Credentials aws.CredentialsProvider

	// MaxAttempts is how many times the SDK tries a request (first try
	// included) on throttling, 5xx and connection errors, with jittered
	// exponential backoff up to MaxBackoff between tries.
	MaxAttempts int
	MaxBackoff  time.Duration
	// DialTimeout bounds connecting to the endpoint.
	DialTimeout time.Duration

	// MultipartThreshold: objects larger than this go up as a multipart
	// upload of PartSize parts (5 MiB is S3's minimum), Concurrency parts at
	// a time.
	MultipartThreshold int64
	PartSize           int64
	Concurrency        int

	// ListPageSize is the keys asked for per ListObjectsV2 request (S3's
	// maximum, 1000, is cheapest; tests lower it to exercise paging).
	ListPageSize int32
}

// Defaults for S3Options.
const (
	DefaultMaxAttempts        = 5
	DefaultMaxBackoff         = 5 * time.Second
	DefaultDialTimeout        = 5 * time.Second
	DefaultPartSize           = 16 << 20
	DefaultMultipartThreshold = 32 << 20
	DefaultConcurrency        = 4
	DefaultListPageSize       = 1000
	minPartSize               = 5 << 20
)

// EnsureDefaults fills zero fields with defaults.
func (o *S3Options) EnsureDefaults() {
	if o.MaxAttempts == 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.PartSize == 0 {
		o.PartSize = DefaultPartSize
	}
	if o.MultipartThreshold == 0 {
		o.MultipartThreshold = max(DefaultMultipartThreshold, o.PartSize)
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.ListPageSize == 0 {
		o.ListPageSize = DefaultListPageSize
	}
}

// bucketName is S3's rule for bucket names (3-63 characters of lower-case
// letters, digits, dots and hyphens, starting and ending with a letter or
// digit).
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// Validate reports the first invalid field.
func (o *S3Options) Validate() error {
	switch {
	case o.Bucket == "":
		return fmt.Errorf("remotestore: s3: no bucket")
	case !bucketName.MatchString(o.Bucket):
		return fmt.Errorf("remotestore: s3: %q is not a valid bucket name (3-63 lower-case letters, digits, '.' and '-')", o.Bucket)
	case o.MaxAttempts < 1:
		return fmt.Errorf("remotestore: s3: MaxAttempts %d < 1", o.MaxAttempts)
	case o.MaxBackoff < 0 || o.DialTimeout < 0:
		return fmt.Errorf("remotestore: s3: negative MaxBackoff or DialTimeout")
	case o.PartSize < minPartSize || o.PartSize > maxSinglePut:
		return fmt.Errorf("remotestore: s3: PartSize %d outside S3's [5 MiB, 5 GiB]", o.PartSize)
	case o.MultipartThreshold < 1 || o.MultipartThreshold > maxSinglePut:
		return fmt.Errorf("remotestore: s3: MultipartThreshold %d outside [1, 5 GiB]", o.MultipartThreshold)
	case o.Concurrency < 1:
		return fmt.Errorf("remotestore: s3: Concurrency %d < 1", o.Concurrency)
	case o.ListPageSize < 1 || o.ListPageSize > 1000:
		return fmt.Errorf("remotestore: s3: ListPageSize %d outside [1, 1000]", o.ListPageSize)
	}
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("remotestore: s3: endpoint %q is not an http:// or https:// URL with a host", o.Endpoint)
		}
	}
	return nil
}
