/*
 * fence.c: classifies the address the refresher is about to connect to
 * (http.c asks for each address libcurl opens a socket for, after DNS and
 * before connect(), so a host name that resolves differently later - DNS
 * rebinding - is checked on what is really connected to).
 */
#include "fence.h"

#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

/* The class of an IPv4 address in host byte order. */
static AddressClass
ipv4_class(uint32_t a)
{
	static const struct
	{
		uint32_t	net;
		int			bits;
		AddressClass class;
	}			nets[] = {
		{0x00000000, 8, ADDRESS_UNSPECIFIED},	/* 0.0.0.0/8 ("this network") */
		{0x0A000000, 8, ADDRESS_PRIVATE},		/* 10/8 */
		{0x64400000, 10, ADDRESS_CGNAT},		/* 100.64/10 */
		{0x7F000000, 8, ADDRESS_LOOPBACK},		/* 127/8 */
		{0xA9FE0000, 16, ADDRESS_LINK_LOCAL},	/* 169.254/16 */
		{0xAC100000, 12, ADDRESS_PRIVATE},		/* 172.16/12 */
		{0xC0000000, 24, ADDRESS_RESERVED},		/* 192.0.0/24 (IETF protocol assignments) */
		{0xC0000200, 24, ADDRESS_RESERVED},		/* 192.0.2/24 (TEST-NET-1) */
		{0xC0586300, 24, ADDRESS_RESERVED},		/* 192.88.99/24 (6to4 relay, deprecated) */
		{0xC0A80000, 16, ADDRESS_PRIVATE},		/* 192.168/16 */
		{0xC6120000, 15, ADDRESS_RESERVED},		/* 198.18/15 (benchmarking) */
		{0xC6336400, 24, ADDRESS_RESERVED},		/* 198.51.100/24 (TEST-NET-2) */
		{0xCB007100, 24, ADDRESS_RESERVED},		/* 203.0.113/24 (TEST-NET-3) */
		{0xE0000000, 4, ADDRESS_MULTICAST},		/* 224/4 */
		{0xF0000000, 4, ADDRESS_RESERVED},		/* 240/4, 255.255.255.255 included */
	};

	for (size_t i = 0; i < sizeof(nets) / sizeof(nets[0]); i++)
		if ((a >> (32 - nets[i].bits)) == (nets[i].net >> (32 - nets[i].bits)))
			return nets[i].class;
	return ADDRESS_PUBLIC;
}

static uint32_t
ipv4_at(const uint8_t *b)
{
	return (uint32_t) b[0] << 24 | (uint32_t) b[1] << 16 | (uint32_t) b[2] << 8 | b[3];
}

static bool
prefix(const uint8_t *b, const uint8_t *p, int bytes)
{
	return memcmp(b, p, bytes) == 0;
}

static AddressClass
ipv6_class(const uint8_t *b)
{
	static const uint8_t zero[16] = {0};
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	static const uint8_t translated[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0};
	static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};

	if (prefix(b, zero, 15))
		return b[15] == 0 ? ADDRESS_UNSPECIFIED : b[15] == 1 ? ADDRESS_LOOPBACK : ADDRESS_RESERVED;
	if (prefix(b, mapped, 12) || prefix(b, translated, 12) || prefix(b, nat64, 12))
		return ipv4_class(ipv4_at(b + 12));		/* ::ffff:a.b.c.d, ::ffff:0:a.b.c.d, 64:ff9b::a.b.c.d */
	if (prefix(b, zero, 12))
		return ipv4_class(ipv4_at(b + 12)) == ADDRESS_PUBLIC ? ADDRESS_RESERVED : ipv4_class(ipv4_at(b + 12));	/* ::a.b.c.d */
	if (b[0] == 0x20 && b[1] == 0x02)
		return ipv4_class(ipv4_at(b + 2));		/* 6to4: 2002:a.b.c.d::/48 */
	if (b[0] == 0xff)
		return ADDRESS_MULTICAST;
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
		return ADDRESS_LINK_LOCAL;
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
		return ADDRESS_PRIVATE;		/* fec0::/10, site-local (deprecated) */
	if ((b[0] & 0xfe) == 0xfc)
		return ADDRESS_UNIQUE_LOCAL;
	if ((b[0] & 0xe0) != 0x20)
		return ADDRESS_RESERVED;	/* outside 2000::/3, global unicast */
	if (b[0] == 0x20 && b[1] == 0x01 && ((b[2] == 0x0d && b[3] == 0xb8) || b[2] < 0x02))
		return ADDRESS_RESERVED;	/* 2001:db8::/32 documentation, 2001::/23 IETF (Teredo included) */
	if (b[0] == 0x3f && b[1] == 0xff && (b[2] & 0xf0) == 0)
		return ADDRESS_RESERVED;	/* 3fff::/20 documentation */
	return ADDRESS_PUBLIC;
}

AddressClass
address_class(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ipv4_class(ntohl(((const struct sockaddr_in *) sa)->sin_addr.s_addr));
	if (sa->sa_family == AF_INET6)
		return ipv6_class(((const struct sockaddr_in6 *) sa)->sin6_addr.s6_addr);
	return ADDRESS_RESERVED;	/* no other family is expected: refuse it */
}

const char *
address_class_name(AddressClass c)
{
	static const char *const names[] = {
		[ADDRESS_PUBLIC] = "public", [ADDRESS_LOOPBACK] = "loopback", [ADDRESS_PRIVATE] = "private",
		[ADDRESS_CGNAT] = "shared (CGNAT)", [ADDRESS_LINK_LOCAL] = "link-local",
		[ADDRESS_UNIQUE_LOCAL] = "unique-local", [ADDRESS_MULTICAST] = "multicast",
		[ADDRESS_UNSPECIFIED] = "unspecified", [ADDRESS_RESERVED] = "reserved (non-public)",
	};

	return c <= ADDRESS_RESERVED ? names[c] : "unknown";
}

const char *
address_class_code(AddressClass c)
{
	static const char *const codes[] = {
		[ADDRESS_PUBLIC] = "public", [ADDRESS_LOOPBACK] = "refused_loopback",
		[ADDRESS_PRIVATE] = "refused_private", [ADDRESS_CGNAT] = "refused_cgnat",
		[ADDRESS_LINK_LOCAL] = "refused_link_local", [ADDRESS_UNIQUE_LOCAL] = "refused_unique_local",
		[ADDRESS_MULTICAST] = "refused_multicast", [ADDRESS_UNSPECIFIED] = "refused_unspecified",
		[ADDRESS_RESERVED] = "refused_reserved",
	};

	return c <= ADDRESS_RESERVED ? codes[c] : "refused_address";
}

bool
address_allowed(AddressClass c, bool allow_loopback, bool allow_private)
{
	switch (c)
	{
		case ADDRESS_PUBLIC:
			return true;
		case ADDRESS_LOOPBACK:
			return allow_loopback || allow_private;
		case ADDRESS_MULTICAST:
		case ADDRESS_UNSPECIFIED:
			return false;
		default:
			return allow_private;
	}
}
