/*
 * rdkafka_txn: librdkafka's transactional producer against a broker, for
 * e2e/txn_test.go. Usage: rdkafka_txn BOOTSTRAP TOPIC TRANSACTIONAL_ID PLAN
 * PLAN is a string of c (a committed transaction) and a (an aborted one);
 * transaction i writes values "<c|a>-<i>-<j>" for j in 0..9, keyed by j so
 * they spread over the partitions. A last committed transaction writes
 * "END" to every partition. Exit status 0 means every call succeeded.
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what, rd_kafka_error_t *err) {
    fprintf(stderr, "%s: %s\n", what, rd_kafka_error_string(err));
    rd_kafka_error_destroy(err);
    exit(1);
}

static void produce(rd_kafka_t *rk, const char *topic, int32_t partition, const char *key, const char *value) {
    rd_kafka_resp_err_t err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                                                RD_KAFKA_V_KEY(key, strlen(key)),
                                                RD_KAFKA_V_VALUE((void *)value, strlen(value)),
                                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (err) {
        fprintf(stderr, "produce %s: %s\n", value, rd_kafka_err2str(err));
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s BOOTSTRAP TOPIC TRANSACTIONAL_ID PLAN\n", argv[0]);
        return 2;
    }
    const char *topic = argv[2], *plan = argv[4];
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "transactional.id", argv[3], errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "transaction.timeout.ms", "60000", errstr, sizeof errstr)) {
        fprintf(stderr, "config: %s\n", errstr);
        return 1;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "new producer: %s\n", errstr);
        return 1;
    }
    rd_kafka_error_t *err;
    if ((err = rd_kafka_init_transactions(rk, 60000)))
        die("init_transactions", err);
    char key[32], value[64];
    for (int i = 0; plan[i]; i++) {
        if ((err = rd_kafka_begin_transaction(rk)))
            die("begin_transaction", err);
        for (int j = 0; j < 10; j++) {
            snprintf(key, sizeof key, "k%d", j);
            snprintf(value, sizeof value, "%c-%d-%d", plan[i], i, j);
            produce(rk, topic, RD_KAFKA_PARTITION_UA, key, value);
        }
        /* Abort purges what is still queued: send it first, so the log
         * really holds the aborted records a reader must skip. */
        if (rd_kafka_flush(rk, 30000)) {
            fprintf(stderr, "flush timed out\n");
            return 1;
        }
        if (plan[i] == 'c') {
            if ((err = rd_kafka_commit_transaction(rk, 60000)))
                die("commit_transaction", err);
        } else if ((err = rd_kafka_abort_transaction(rk, 60000))) {
            die("abort_transaction", err);
        }
    }
    const rd_kafka_metadata_t *md;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) || md->topic_cnt != 1) {
        fprintf(stderr, "metadata of %s failed\n", topic);
        return 1;
    }
    int partitions = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    if ((err = rd_kafka_begin_transaction(rk)))
        die("begin_transaction", err);
    for (int p = 0; p < partitions; p++)
        produce(rk, topic, p, "end", "END");
    if ((err = rd_kafka_commit_transaction(rk, 60000)))
        die("commit_transaction", err);
    rd_kafka_destroy(rk);
    printf("ok %d partitions\n", partitions);
    return 0;
}
