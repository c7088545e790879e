/*
 * The DPDK fast path is made of static inline functions, which have no symbol to link
 * against. Each shim below is a real function wrapping one of them, compiled with the same
 * flags DPDK's pkg-config file gives, so it behaves exactly like the inline original.
 */
#ifndef EGRESSFWD_SHIM_H
#define EGRESSFWD_SHIM_H

#include <stddef.h>
#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;

uint16_t efw_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **pkts, uint16_t nb_pkts);
uint16_t efw_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **pkts, uint16_t nb_pkts);

struct rte_mbuf *efw_pktmbuf_alloc(struct rte_mempool *mp);
int efw_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int count);
void efw_pktmbuf_free(struct rte_mbuf *m);

char *efw_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *efw_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
char *efw_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
int efw_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
void *efw_pktmbuf_data(struct rte_mbuf *m);
uint16_t efw_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t efw_pktmbuf_tailroom(const struct rte_mbuf *m);

unsigned int efw_lcore_id(void);

/* DPDK's log, line by line, to `sink` (its level as rte_log numbers it: 1 emergency to
 * 8 debug), instead of stderr. 0 on success. */
typedef void (*efw_log_sink)(uint32_t level, const char *text, size_t len);
int efw_log_redirect(efw_log_sink sink);
int efw_errno(void);

/* Flag sets that DPDK only defines as macros built from RTE_BIT64(), which bindgen cannot
 * evaluate. */
extern const uint64_t efw_rss_ip_tcp_udp;
extern const uint64_t efw_rss_ip;

#endif
