/* fopencookie */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/types.h>

#include <rte_errno.h>
#include <rte_log.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "shim.h"

uint16_t efw_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **pkts, uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, pkts, nb_pkts);
}

uint16_t efw_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **pkts, uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, pkts, nb_pkts);
}

struct rte_mbuf *efw_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int efw_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int count)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void efw_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

char *efw_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_prepend(m, len);
}

char *efw_pktmbuf_adj(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_adj(m, len);
}

char *efw_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}

int efw_pktmbuf_trim(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_trim(m, len);
}

void *efw_pktmbuf_data(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, void *);
}

uint16_t efw_pktmbuf_headroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_headroom(m);
}

uint16_t efw_pktmbuf_tailroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_tailroom(m);
}

unsigned int efw_lcore_id(void)
{
	return rte_lcore_id();
}

int efw_errno(void)
{
	return rte_errno;
}

const uint64_t efw_rss_ip_tcp_udp = RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP;
const uint64_t efw_rss_ip = RTE_ETH_RSS_IP;

static efw_log_sink log_sink;

/* Called by stdio with what rte_log wrote: the level is that of the message being written
 * (rte_log flushes after each message, and the stream is line-buffered). */
static ssize_t efw_log_write(void *cookie, const char *buf, size_t len)
{
	(void)cookie;
	if (log_sink != NULL)
		log_sink((uint32_t)rte_log_cur_msg_loglevel(), buf, len);
	return (ssize_t)len;
}

int efw_log_redirect(efw_log_sink sink)
{
	cookie_io_functions_t io = { .read = NULL, .write = efw_log_write, .seek = NULL, .close = NULL };
	FILE *stream = fopencookie(NULL, "w", io);
	if (stream == NULL)
		return -1;
	setvbuf(stream, NULL, _IOLBF, 0);
	log_sink = sink;
	return rte_openlog_stream(stream);
}
