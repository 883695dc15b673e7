package remotestore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// putMultipart uploads size bytes of r as a multipart upload: parts of
// opts.PartSize (grown if the object would need more than 10,000 parts), up
// to opts.Concurrency of them in flight, each with a CRC32C checksum that S3
// checks and that Complete lists again. Any failure aborts the upload so no
// parts are left behind to be billed.
//
// A reader with ReadAt and Seek (a segment file) is read in place by each
// part; any other reader is read sequentially into pooled part buffers.
func (s *s3Store) putMultipart(ctx context.Context, key string, r io.Reader, size int64) (err error) {
	partSize := s.opts.PartSize
	if (size+partSize-1)/partSize > maxParts {
		partSize = (size + maxParts - 1) / maxParts
	}
	numParts := int((size + partSize - 1) / partSize)

	src, err := newPartSource(r, size, partSize, &s.partPool, s.opts.PartSize)
	if err != nil {
		return fmt.Errorf("remotestore: put %s: %w", key, err)
	}

	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:            aws.String(s.opts.Bucket),
		Key:               aws.String(key),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
	})
	if err != nil {
		return s.wrapErr("put", key, err)
	}
	uploadID := created.UploadId
	defer func() {
		if err == nil {
			return
		}
		// Abort even when ctx was cancelled: that is often why we failed.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, aerr := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(s.opts.Bucket), Key: aws.String(key), UploadId: uploadID,
		}); aerr != nil {
			err = fmt.Errorf("%w (and aborting the multipart upload failed: %v)", err, aerr)
		}
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		parts    = make([]types.CompletedPart, numParts)
		slots    = make(chan struct{}, s.opts.Concurrency)
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
upload:
	for i := range numParts {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			break upload
		}
		offset := int64(i) * partSize
		n := min(partSize, size-offset)
		body, release, err := src.part(offset, n)
		if err != nil {
			<-slots
			fail(fmt.Errorf("remotestore: put %s: part %d: %w", key, i+1, err))
			break
		}
		wg.Go(func() {
			defer func() { release(); <-slots }()
			out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
				Bucket:            aws.String(s.opts.Bucket),
				Key:               aws.String(key),
				UploadId:          uploadID,
				PartNumber:        aws.Int32(int32(i + 1)),
				Body:              body,
				ContentLength:     aws.Int64(n),
				ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
			})
			if err != nil {
				fail(s.wrapErr("put", fmt.Sprintf("%s (part %d of %d)", key, i+1, numParts), err))
				return
			}
			parts[i] = types.CompletedPart{
				ETag:           out.ETag,
				PartNumber:     aws.Int32(int32(i + 1)),
				ChecksumCRC32C: out.ChecksumCRC32C,
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("remotestore: put %s: %w", key, err)
	}
	src.finish()

	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.opts.Bucket),
		Key:             aws.String(key),
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	return s.wrapErr("put", key, err)
}

// partSource hands out the parts of an upload as rewindable bodies.
type partSource struct {
	ra      io.ReaderAt // in place, when the reader allows it
	seeker  io.Seeker
	base    int64
	size    int64
	r       io.Reader // otherwise read sequentially into buffers
	pool    *sync.Pool
	bufSize int64
}

func newPartSource(r io.Reader, size, partSize int64, pool *sync.Pool, poolSize int64) (*partSource, error) {
	if ra, ok := r.(interface {
		io.ReaderAt
		io.Seeker
	}); ok {
		pos, err := ra.Seek(0, io.SeekCurrent)
		if err == nil {
			end, err := ra.Seek(0, io.SeekEnd)
			if err != nil {
				return nil, err
			}
			if _, err := ra.Seek(pos, io.SeekStart); err != nil {
				return nil, err
			}
			if end-pos < size {
				return nil, fmt.Errorf("reader has %d of %d bytes: %w", end-pos, size, io.ErrUnexpectedEOF)
			}
			return &partSource{ra: ra, seeker: ra, base: pos, size: size}, nil
		}
	}
	// Pooled buffers are opts.PartSize; an upload that had to grow its parts
	// allocates its own.
	if partSize != poolSize {
		pool = nil
	}
	return &partSource{r: r, size: size, pool: pool, bufSize: partSize}, nil
}

// part returns bytes [offset, offset+n) and a func to call when the body is
// no longer needed. Parts are requested in order.
func (p *partSource) part(offset, n int64) (io.ReadSeeker, func(), error) {
	if p.ra != nil {
		return io.NewSectionReader(p.ra, p.base+offset, n), func() {}, nil
	}
	var buf *[]byte
	if p.pool != nil {
		buf, _ = p.pool.Get().(*[]byte)
	}
	if buf == nil {
		b := make([]byte, p.bufSize)
		buf = &b
	}
	release := func() {
		if p.pool != nil {
			p.pool.Put(buf)
		}
	}
	if got, err := io.ReadFull(p.r, (*buf)[:n]); err != nil {
		release()
		return nil, nil, fmt.Errorf("reader ended after %d of %d bytes: %w", offset+int64(got), p.size, err)
	}
	return bytes.NewReader((*buf)[:n]), release, nil
}

// finish advances a seekable reader past the uploaded bytes.
func (p *partSource) finish() {
	if p.seeker != nil {
		p.seeker.Seek(p.base+p.size, io.SeekStart)
	}
}
