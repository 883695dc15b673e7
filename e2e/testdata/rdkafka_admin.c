/*
 * rdkafka_admin: a tiny librdkafka admin client for Strata's conformance
 * tests — the config calls a librdkafka-based tool (Terraform providers,
 * confluent-kafka clients) makes.
 *
 *   rdkafka_admin BROKER create TOPIC [name=value ...]
 *       creates TOPIC (1 partition, replication factor 1) with the configs;
 *       prints "ok" or "error CODE_NAME: message" and exits 0 either way
 *       (1 only when the call itself fails).
 *   rdkafka_admin BROKER describe TOPIC NAME
 *       prints "NAME=VALUE source=SOURCE" for one of TOPIC's configs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <librdkafka/rdkafka.h>

static rd_kafka_t *connect_admin(const char *broker) {
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "bootstrap.servers", broker, err, sizeof err) != RD_KAFKA_CONF_OK) {
		fprintf(stderr, "conf: %s\n", err);
		exit(1);
	}
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
	if (!rk) {
		fprintf(stderr, "rd_kafka_new: %s\n", err);
		exit(1);
	}
	return rk;
}

static rd_kafka_event_t *wait_result(rd_kafka_queue_t *q, rd_kafka_event_type_t type) {
	for (;;) {
		rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
		if (!ev) {
			fprintf(stderr, "timed out waiting for the admin result\n");
			exit(1);
		}
		if (rd_kafka_event_type(ev) == type)
			return ev;
		rd_kafka_event_destroy(ev);
	}
}

static int create(rd_kafka_t *rk, const char *topic, int nconf, char **confs) {
	char err[512];
	rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, 1, 1, err, sizeof err);
	if (!nt) {
		fprintf(stderr, "NewTopic: %s\n", err);
		return 1;
	}
	for (int i = 0; i < nconf; i++) {
		char *eq = strchr(confs[i], '=');
		if (!eq) {
			fprintf(stderr, "config %s is not name=value\n", confs[i]);
			return 1;
		}
		*eq = '\0';
		rd_kafka_NewTopic_set_config(nt, confs[i], eq + 1);
	}
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
	rd_kafka_event_t *ev = wait_result(q, RD_KAFKA_EVENT_CREATETOPICS_RESULT);
	if (rd_kafka_event_error(ev)) {
		fprintf(stderr, "CreateTopics: %s\n", rd_kafka_event_error_string(ev));
		return 1;
	}
	size_t n;
	const rd_kafka_topic_result_t **res = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
	for (size_t i = 0; i < n; i++) {
		rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
		if (e)
			printf("error %s: %s\n", rd_kafka_err2name(e), rd_kafka_topic_result_error_string(res[i]));
		else
			printf("ok\n");
	}
	rd_kafka_event_destroy(ev);
	rd_kafka_NewTopic_destroy(nt);
	rd_kafka_queue_destroy(q);
	return 0;
}

static int describe(rd_kafka_t *rk, const char *topic, const char *name) {
	rd_kafka_ConfigResource_t *cr = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_DescribeConfigs(rk, &cr, 1, NULL, q);
	rd_kafka_event_t *ev = wait_result(q, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT);
	if (rd_kafka_event_error(ev)) {
		fprintf(stderr, "DescribeConfigs: %s\n", rd_kafka_event_error_string(ev));
		return 1;
	}
	size_t nres, ncfg;
	const rd_kafka_ConfigResource_t **res = rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &nres);
	int found = 0;
	for (size_t i = 0; i < nres; i++) {
		if (rd_kafka_ConfigResource_error(res[i])) {
			printf("error %s: %s\n", rd_kafka_err2name(rd_kafka_ConfigResource_error(res[i])), rd_kafka_ConfigResource_error_string(res[i]));
			found = 1;
			continue;
		}
		const rd_kafka_ConfigEntry_t **cfg = rd_kafka_ConfigResource_configs(res[i], &ncfg);
		for (size_t j = 0; j < ncfg; j++) {
			if (strcmp(rd_kafka_ConfigEntry_name(cfg[j]), name) == 0) {
				const char *v = rd_kafka_ConfigEntry_value(cfg[j]);
				printf("%s=%s source=%s\n", name, v ? v : "(null)", rd_kafka_ConfigSource_name(rd_kafka_ConfigEntry_source(cfg[j])));
				found = 1;
			}
		}
	}
	if (!found)
		printf("missing %s\n", name);
	rd_kafka_event_destroy(ev);
	rd_kafka_ConfigResource_destroy(cr);
	rd_kafka_queue_destroy(q);
	return 0;
}

int main(int argc, char **argv) {
	if (argc < 4) {
		fprintf(stderr, "usage: %s BROKER create TOPIC [name=value ...] | BROKER describe TOPIC NAME\n", argv[0]);
		return 2;
	}
	rd_kafka_t *rk = connect_admin(argv[1]);
	int rc;
	if (strcmp(argv[2], "create") == 0)
		rc = create(rk, argv[3], argc - 4, argv + 4);
	else if (strcmp(argv[2], "describe") == 0 && argc == 5)
		rc = describe(rk, argv[3], argv[4]);
	else {
		fprintf(stderr, "unknown command %s\n", argv[2]);
		rc = 2;
	}
	rd_kafka_destroy(rk);
	return rc;
}
