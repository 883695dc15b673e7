package remotestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// s3Store is Storage on an S3 bucket (AWS S3 or MinIO) through aws-sdk-go-v2.
// Credentials come from the SDK's standard chain unless S3Options gives some;
// requests are retried by the SDK's standard retryer with jittered exponential
// backoff; uploads carry a CRC32C checksum the server verifies; objects above
// S3Options.MultipartThreshold go up as a multipart upload, parts in parallel,
// aborted if any part fails.
type s3Store struct {
	opts     S3Options
	client   *s3.Client
	counters atomic.Pointer[Counters] // set by WithCounters; counts each HTTP attempt
	partPool sync.Pool                // *[]byte of opts.PartSize, for readers that cannot ReadAt
}

var (
	_ Storage     = (*s3Store)(nil)
	_ wireCounter = (*s3Store)(nil)
)

// maxDeleteBatch is S3's limit on keys per DeleteObjects request.
const maxDeleteBatch = 1000

// maxParts is S3's limit on parts per multipart upload.
const maxParts = 10000

// NewS3 returns a Storage on the bucket opts names. It does no network I/O
// (it reads the AWS config files); Check verifies the endpoint, credentials
// and bucket.
func NewS3(opts S3Options) (Storage, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := &s3Store{opts: opts}
	// The SDK's buildable client, so the config loader can add a custom CA
	// bundle (AWS_CA_BUNDLE) to it.
	buildable := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = opts.DialTimeout }).
		WithTransportOptions(func(tr *http.Transport) {
			// Parts and read-ahead GETs run in parallel (a replay keeps up
			// to remote.log.read.ahead.bytes / remote.fetch.chunk.bytes GETs
			// in flight); keep their connections instead of redialling,
			// which at S3 latency costs a round trip each time.
			tr.MaxIdleConnsPerHost = max(tr.MaxIdleConnsPerHost, 64, 4*opts.Concurrency)
		})
	loadOpts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(buildable),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = opts.MaxAttempts
				o.MaxBackoff = opts.MaxBackoff
				// The default token bucket stops retrying after a burst of
				// failures (an outage) until successes refill it; the copier
				// retries on its own schedule, so retry every request.
				o.RateLimiter = ratelimit.None
			})
		}),
	}
	if opts.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(opts.Region))
	}
	if opts.Credentials != nil {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(opts.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(context.Background(), loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("remotestore: s3 bucket %q: loading AWS configuration: %w", opts.Bucket, err)
	}
	if cfg.Region == "" {
		if opts.Endpoint == "" {
			return nil, fmt.Errorf("remotestore: s3 bucket %q: no region: add region=R to the URL or set AWS_REGION", opts.Bucket)
		}
		cfg.Region = "us-east-1" // MinIO's default; it ignores the region otherwise
	}
	s.opts.Region = cfg.Region
	s.client = s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = opts.PathStyle
		// Validate response checksums when Get asks (whole objects); a
		// ranged GET has none to validate, and by default the SDK logs
		// that on every one.
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.APIOptions = append(o.APIOptions, s.addCountingMiddleware)
	})
	return s, nil
}

func (s *s3Store) String() string {
	if s.opts.Endpoint != "" {
		return "s3://" + s.opts.Bucket + " at " + s.opts.Endpoint
	}
	return "s3://" + s.opts.Bucket
}

func (s *s3Store) countRequests(c *Counters) { s.counters.Store(c) }

// addCountingMiddleware counts requests at the end of the finalize step,
// after the retry middleware, so every attempt on the wire is counted.
func (s *s3Store) addCountingMiddleware(stack *middleware.Stack) error {
	return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("StrataCountRequests",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			if c := s.counters.Load(); c != nil {
				switch awsmiddleware.GetOperationName(ctx) {
				case "GetObject":
					c.add(reqGet, 1)
				case "HeadObject", "HeadBucket":
					c.add(reqHead, 1)
				case "ListObjectsV2":
					c.add(reqList, 1)
				case "DeleteObjects", "AbortMultipartUpload":
					c.add(reqDelete, 1)
				default: // PutObject and the multipart upload's requests
					c.add(reqPut, 1)
				}
			}
			return next.HandleFinalize(ctx, in)
		}), middleware.After)
}

func (s *s3Store) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("remotestore: put %s: negative size %d", key, size)
	}
	if size > s.opts.MultipartThreshold {
		return s.putMultipart(ctx, key, r, size)
	}
	return s.putObject(ctx, "put", key, r, size, false)
}

func (s *s3Store) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if size < 0 || size > maxSinglePut {
		return fmt.Errorf("remotestore: put-if-absent %s: size %d is outside [0, 5 GiB]", key, size)
	}
	return s.putObject(ctx, "put-if-absent", key, r, size, true)
}

// maxSinglePut is S3's limit on one PutObject.
const maxSinglePut = 5 << 30

func (s *s3Store) putObject(ctx context.Context, op, key string, r io.Reader, size int64, ifAbsent bool) error {
	// The SDK signs the payload's SHA-256 over plain HTTP (MinIO in tests),
	// which needs a body it can rewind: a section of a file, or a buffer.
	body, done, err := seekableBody(r, size)
	if err != nil {
		return fmt.Errorf("remotestore: %s %s: %w", op, key, err)
	}
	in := &s3.PutObjectInput{
		Bucket:            aws.String(s.opts.Bucket),
		Key:               aws.String(key),
		Body:              body,
		ContentLength:     aws.Int64(size),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
	}
	if ifAbsent {
		in.IfNoneMatch = aws.String("*")
	}
	_, err = s.client.PutObject(ctx, in)
	done(err == nil)
	return s.wrapErr(op, key, err)
}

// seekableBody returns size bytes of r as a ReadSeeker. A reader that has
// ReadAt and Seek (an *os.File, a bytes.Reader) is used in place from its
// current position; anything else is read into memory. done(true) advances a
// seekable r past the bytes, as reading it would have.
func seekableBody(r io.Reader, size int64) (io.ReadSeeker, func(ok bool), error) {
	if ra, ok := r.(interface {
		io.ReaderAt
		io.Seeker
	}); ok {
		pos, err := ra.Seek(0, io.SeekCurrent)
		if err == nil {
			end, err := ra.Seek(0, io.SeekEnd)
			if err != nil {
				return nil, nil, err
			}
			if _, err := ra.Seek(pos, io.SeekStart); err != nil {
				return nil, nil, err
			}
			if end-pos < size {
				return nil, nil, fmt.Errorf("reader has %d of %d bytes: %w", end-pos, size, io.ErrUnexpectedEOF)
			}
			return io.NewSectionReader(ra, pos, size), func(ok bool) {
				if ok {
					ra.Seek(pos+size, io.SeekStart)
				}
			}, nil
		}
	}
	buf := make([]byte, size)
	if n, err := io.ReadFull(r, buf); err != nil {
		return nil, nil, fmt.Errorf("reader ended after %d of %d bytes: %w", n, size, err)
	}
	return bytes.NewReader(buf), func(bool) {}, nil
}

func (s *s3Store) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := validateRange(key, offset, length); err != nil {
		return nil, err
	}
	in := &s3.GetObjectInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(key)}
	switch {
	case offset == 0 && length == -1:
		// The whole object: have the SDK check the stored checksum.
		in.ChecksumMode = types.ChecksumModeEnabled
	case length == -1:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", offset))
	default:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", offset, offset+length-1))
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		return nil, s.wrapErr("get", key, err)
	}
	return out.Body, nil
}

func (s *s3Store) Head(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(key)})
	if err != nil {
		return ObjectInfo{}, s.wrapErr("head", key, err)
	}
	return ObjectInfo{
		Key:     key,
		Size:    aws.ToInt64(out.ContentLength),
		ETag:    strings.Trim(aws.ToString(out.ETag), `"`),
		ModTime: aws.ToTime(out.LastModified),
	}, nil
}

func (s *s3Store) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.opts.Bucket), MaxKeys: aws.Int32(s.opts.ListPageSize)}
	if prefix != "" {
		in.Prefix = aws.String(prefix)
	}
	var out []ObjectInfo
	pages := s3.NewListObjectsV2Paginator(s.client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, s.wrapErr("list", prefix+"*", err)
		}
		for _, o := range page.Contents {
			out = append(out, ObjectInfo{
				Key:     aws.ToString(o.Key),
				Size:    aws.ToInt64(o.Size),
				ETag:    strings.Trim(aws.ToString(o.ETag), `"`),
				ModTime: aws.ToTime(o.LastModified),
			})
		}
	}
	return out, nil
}

func (s *s3Store) Delete(ctx context.Context, keys ...string) error {
	for _, key := range keys {
		if err := ValidateKey(key); err != nil {
			return err
		}
	}
	for batch := range slices.Chunk(keys, maxDeleteBatch) {
		ids := make([]types.ObjectIdentifier, len(batch))
		for i, k := range batch {
			ids[i] = types.ObjectIdentifier{Key: aws.String(k)}
		}
		out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(s.opts.Bucket),
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return s.wrapErr("delete", fmt.Sprintf("%s (+%d keys)", batch[0], len(batch)-1), err)
		}
		// S3 reports a missing key as deleted; some S3-compatible stores
		// report NoSuchKey. Either way it is gone.
		var failed []string
		for _, e := range out.Errors {
			if aws.ToString(e.Code) != "NoSuchKey" {
				failed = append(failed, fmt.Sprintf("%s: %s %s", aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message)))
			}
		}
		if len(failed) > 0 {
			return fmt.Errorf("remotestore: s3 delete in %s: %d of %d keys failed: %s", s, len(failed), len(batch), strings.Join(failed, "; "))
		}
	}
	return nil
}

func (s *s3Store) Check(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.opts.Bucket)})
	if err == nil {
		return nil
	}
	// HEAD responses have no body, so a missing bucket is a bare 404.
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
		return fmt.Errorf("remotestore: %s: bucket %q does not exist", s, s.opts.Bucket)
	}
	return s.wrapErr("check", "", err)
}

func (s *s3Store) Close() error {
	// The SDK's client has no way to drop idle connections; its transport
	// closes them after 90 s idle.
	return nil
}

// wrapErr turns an SDK error into one that says what went wrong in words an
// operator can act on, keeping the SDK's error for errors.As.
func (s *s3Store) wrapErr(op, key string, err error) error {
	if err == nil {
		return nil
	}
	where := fmt.Sprintf("remotestore: s3 %s %s", op, key)
	if key == "" {
		where = fmt.Sprintf("remotestore: s3 %s", op)
	}
	var (
		code   string
		status int
		apiErr smithy.APIError
		resp   *awshttp.ResponseError
		send   *smithyhttp.RequestSendError
		sign   *v4.SigningError
	)
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	if errors.As(err, &resp) {
		status = resp.HTTPStatusCode()
	}
	switch {
	case code == "NoSuchBucket":
		return fmt.Errorf("%s: bucket %q does not exist in %s: %w", where, s.opts.Bucket, s, err)
	case code == "NoSuchKey" || code == "NotFound" || status == http.StatusNotFound:
		return fmt.Errorf("%s: %w", where, ErrNotFound)
	case op == "put-if-absent" && (code == "PreconditionFailed" || status == http.StatusPreconditionFailed):
		return fmt.Errorf("%s: %w", where, ErrExists)
	case code == "InvalidRange" || status == http.StatusRequestedRangeNotSatisfiable:
		return fmt.Errorf("%s: %w", where, ErrRange)
	case code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" || code == "AccessDenied" || status == http.StatusForbidden:
		return fmt.Errorf("%s: access denied by %s (%s): check the credentials "+
			"(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE) and the bucket policy: %w", where, s, code, err)
	case errors.As(err, &sign):
		return fmt.Errorf("%s: no usable AWS credentials (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE): %w", where, err)
	case errors.As(err, &send):
		return fmt.Errorf("%s: cannot reach %s: %w", where, s, err)
	}
	return fmt.Errorf("%s in %s: %w", where, s, err)
}
