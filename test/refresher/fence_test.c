/*
 * fence_test.c: the refresher's address fence (src/refresher/fence.c) on
 * literal addresses of every class. Only inet_pton: no name is resolved and
 * no connection is made. Built and run by test/refresher/run.sh:
 *
 *   cc -Isrc/refresher test/refresher/fence_test.c src/refresher/fence.c
 *
 * Prints one "ok - ..." / "not ok - ..." line per check.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "fence.h"

static int	failed = 0;

static AddressClass
classify(const char *text, int *parsed)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	*parsed = 1;
	if (inet_pton(AF_INET, text, &((struct sockaddr_in *) &ss)->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, text, &((struct sockaddr_in6 *) &ss)->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		*parsed = 0;
	return address_class((struct sockaddr *) &ss);
}

static void
check(const char *text, AddressClass want)
{
	int			parsed;
	AddressClass got = classify(text, &parsed);
	int			ok = parsed && got == want;

	failed |= !ok;
	printf("%s - fence: %s is %s%s%s\n", ok ? "ok" : "not ok", text, address_class_name(want),
		   ok ? "" : ", got ", ok ? "" : address_class_name(got));
}

static void
allowed(AddressClass c, int loopback, int private, int want)
{
	int			ok = address_allowed(c, loopback, private) == want;

	failed |= !ok;
	printf("%s - fence: %s %s with%s%s\n", ok ? "ok" : "not ok", address_class_name(c),
		   want ? "allowed" : "refused", loopback ? " --allow-http-loopback" : "",
		   private ? " --allow-private-hosts" : (loopback ? "" : " no flag"));
}

int
main(void)
{
	static const struct
	{
		const char *text;
		AddressClass class;
	}			cases[] = {
		{"8.8.8.8", ADDRESS_PUBLIC}, {"1.1.1.1", ADDRESS_PUBLIC}, {"100.63.255.255", ADDRESS_PUBLIC},
		{"100.128.0.0", ADDRESS_PUBLIC}, {"172.15.255.255", ADDRESS_PUBLIC}, {"172.32.0.0", ADDRESS_PUBLIC},
		{"192.169.0.1", ADDRESS_PUBLIC}, {"223.255.255.255", ADDRESS_PUBLIC},
		{"127.0.0.1", ADDRESS_LOOPBACK}, {"127.255.255.254", ADDRESS_LOOPBACK},
		{"10.0.0.1", ADDRESS_PRIVATE}, {"10.255.255.255", ADDRESS_PRIVATE},
		{"172.16.0.1", ADDRESS_PRIVATE}, {"172.31.255.255", ADDRESS_PRIVATE},
		{"192.168.0.1", ADDRESS_PRIVATE}, {"192.168.255.255", ADDRESS_PRIVATE},
		{"100.64.0.1", ADDRESS_CGNAT}, {"100.127.255.255", ADDRESS_CGNAT},
		{"169.254.169.254", ADDRESS_LINK_LOCAL}, {"169.254.0.1", ADDRESS_LINK_LOCAL},
		{"224.0.0.1", ADDRESS_MULTICAST}, {"239.255.255.250", ADDRESS_MULTICAST},
		{"0.0.0.0", ADDRESS_UNSPECIFIED}, {"0.1.2.3", ADDRESS_UNSPECIFIED},
		{"255.255.255.255", ADDRESS_RESERVED}, {"240.0.0.1", ADDRESS_RESERVED},
		{"192.0.2.1", ADDRESS_RESERVED}, {"198.18.0.1", ADDRESS_RESERVED},
		{"198.51.100.1", ADDRESS_RESERVED}, {"203.0.113.1", ADDRESS_RESERVED},
		{"192.0.0.8", ADDRESS_RESERVED},
		{"2606:4700:4700::1111", ADDRESS_PUBLIC}, {"2a00:1450:4001:80b::200e", ADDRESS_PUBLIC},
		{"::1", ADDRESS_LOOPBACK}, {"::", ADDRESS_UNSPECIFIED},
		{"fe80::1", ADDRESS_LINK_LOCAL}, {"febf:ffff::1", ADDRESS_LINK_LOCAL},
		{"fc00::1", ADDRESS_UNIQUE_LOCAL}, {"fd12:3456:789a::1", ADDRESS_UNIQUE_LOCAL},
		{"fec0::1", ADDRESS_PRIVATE}, {"ff02::1", ADDRESS_MULTICAST}, {"ff05::2", ADDRESS_MULTICAST},
		{"::ffff:127.0.0.1", ADDRESS_LOOPBACK}, {"::ffff:10.1.2.3", ADDRESS_PRIVATE},
		{"::ffff:169.254.169.254", ADDRESS_LINK_LOCAL}, {"::ffff:0.0.0.0", ADDRESS_UNSPECIFIED},
		{"::ffff:8.8.8.8", ADDRESS_PUBLIC}, {"::ffff:0:192.168.1.1", ADDRESS_PRIVATE},
		{"::127.0.0.1", ADDRESS_LOOPBACK}, {"::8.8.8.8", ADDRESS_RESERVED},
		{"64:ff9b::7f00:1", ADDRESS_LOOPBACK}, {"64:ff9b::808:808", ADDRESS_PUBLIC},
		{"2002:c0a8:0101::1", ADDRESS_PRIVATE}, {"2002:7f00:1::1", ADDRESS_LOOPBACK},
		{"2002:0808:0808::1", ADDRESS_PUBLIC},
		{"2001:db8::1", ADDRESS_RESERVED}, {"2001:0:4136:e378::1", ADDRESS_RESERVED},
		{"100::1", ADDRESS_RESERVED}, {"3fff::1", ADDRESS_RESERVED}, {"4000::1", ADDRESS_RESERVED},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check(cases[i].text, cases[i].class);
	allowed(ADDRESS_PUBLIC, 0, 0, 1);
	allowed(ADDRESS_LOOPBACK, 0, 0, 0);
	allowed(ADDRESS_LOOPBACK, 1, 0, 1);
	allowed(ADDRESS_LOOPBACK, 0, 1, 1);
	for (AddressClass c = ADDRESS_PRIVATE; c <= ADDRESS_RESERVED; c++)
	{
		int			never = c == ADDRESS_MULTICAST || c == ADDRESS_UNSPECIFIED;

		allowed(c, 0, 0, 0);
		allowed(c, 1, 0, 0);
		allowed(c, 1, 1, !never);
	}
	return failed;
}
