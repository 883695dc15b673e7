package broker

import (
	"syscall"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeLogDirs, versions 0–4.
//
// The data directory, with each partition's local size. When tiered storage
// is on, a second, pseudo directory named "remote:" reports each tiered
// partition's bytes in the bucket as Size and its copy lag — local bytes not
// yet copied — as OffsetLag (Kafka uses that field for a future replica's lag;
// a tiered copy is the closest thing Strata has). Its error code is
// KAFKA_STORAGE_ERROR while copies of some partition are failing. `strata tier
// status` reads this; kafka-log-dirs shows it too.
func init() { register(kmsg.DescribeLogDirs, 0, 4, handleDescribeLogDirs) }

const remoteDirName = "remote:"

func handleDescribeLogDirs(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.DescribeLogDirsRequest)
	b := c.b
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)
	wanted := func(topic string, p int32) bool {
		if req.Topics == nil {
			return true
		}
		for _, rt := range req.Topics {
			if rt.Topic != topic {
				continue
			}
			for _, rp := range rt.Partitions {
				if rp == p {
					return true
				}
			}
		}
		return false
	}
	local := kmsg.NewDescribeLogDirsResponseDir()
	local.Dir = b.opts.DataDir
	local.TotalBytes, local.UsableBytes = diskSpace(b.opts.DataDir)
	remote := kmsg.NewDescribeLogDirsResponseDir()
	remote.Dir = remoteDirName
	remote.TotalBytes, remote.UsableBytes = -1, -1
	for _, t := range b.topics.all() {
		lt := kmsg.NewDescribeLogDirsResponseDirTopic()
		lt.Topic = t.meta.Name
		rt := lt
		rt.Partitions = nil
		for _, p := range t.hosted() {
			if !wanted(p.Topic, p.Index) {
				continue
			}
			lp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
			lp.Partition, lp.Size = p.Index, p.Size()
			lt.Partitions = append(lt.Partitions, lp)
			if tp := p.Tier(); tp != nil {
				remoteBytes, lagBytes := tierStats(p, tp)
				rp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
				rp.Partition, rp.Size, rp.OffsetLag = p.Index, remoteBytes, lagBytes
				rt.Partitions = append(rt.Partitions, rp)
				if tp.LastError() != nil {
					remote.ErrorCode = kerr.KafkaStorageError.Code
				}
			}
		}
		if len(lt.Partitions) > 0 {
			local.Topics = append(local.Topics, lt)
		}
		if len(rt.Partitions) > 0 {
			remote.Topics = append(remote.Topics, rt)
		}
	}
	resp.Dirs = append(resp.Dirs, local)
	if b.tier != nil {
		resp.Dirs = append(resp.Dirs, remote)
	}
	return resp, nil
}

func diskSpace(dir string) (total, usable int64) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return -1, -1
	}
	return int64(st.Blocks) * int64(st.Bsize), int64(st.Bavail) * int64(st.Bsize)
}
