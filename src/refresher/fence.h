/*
 * fence.h: which addresses the refresher may connect to. An org chooses its
 * token URL, so without this fence any org could make the refresher send
 * requests into the operator's network. The lowest layer: no libcurl, no
 * other file of the refresher.
 */
#ifndef SDR_REFRESHER_FENCE_H
#define SDR_REFRESHER_FENCE_H

#include <stdbool.h>
#include <sys/socket.h>

typedef enum AddressClass
{
	ADDRESS_PUBLIC = 0,
	ADDRESS_LOOPBACK,			/* 127/8, ::1 */
	ADDRESS_PRIVATE,			/* 10/8, 172.16/12, 192.168/16, fec0::/10 */
	ADDRESS_CGNAT,				/* 100.64/10 */
	ADDRESS_LINK_LOCAL,			/* 169.254/16, fe80::/10 */
	ADDRESS_UNIQUE_LOCAL,		/* fc00::/7 */
	ADDRESS_MULTICAST,			/* 224/4, ff00::/8 */
	ADDRESS_UNSPECIFIED,		/* 0.0.0.0/8, :: */
	ADDRESS_RESERVED			/* documentation, benchmarking, 240/4, broadcast, not 2000::/3, ... */
} AddressClass;

/* The class of an AF_INET or AF_INET6 address (IPv4-mapped and embedding forms by their IPv4). */
AddressClass address_class(const struct sockaddr *sa);

/* "loopback", "private", ...: for "resolves to a <name> address". */
const char *address_class_name(AddressClass c);

/* "refused_loopback", "refused_private", ...: the error code of a refused connection. */
const char *address_class_code(AddressClass c);

/*
 * Whether the refresher may connect there: public addresses always;
 * loopback with allow_loopback (--allow-http-loopback) or allow_private;
 * the other non-public classes with allow_private (--allow-private-hosts),
 * except multicast and unspecified, never.
 */
bool		address_allowed(AddressClass c, bool allow_loopback, bool allow_private);

#endif
