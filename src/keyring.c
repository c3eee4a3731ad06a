/*
 * keyring.c: reads the keyring file named by sdr_creds.keyring_file.
 *
 * Each non-blank line not starting with '#' is "<version> <64 hex digits>".
 * The newest (highest) version encrypts; every listed version decrypts. The
 * file is re-read when its path changes, or when its stat identity changes
 * (looked at no more than once a second). Key bytes live
 * in sodium_malloc'd (guarded, locked) memory and are wiped on release and at
 * backend exit. No error message ever quotes a line of the file.
 */
#include "sdr_creds.h"

#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "keyring.h"
#include "executor/spi.h"
#include "settings.h"
#include "statements.h"
#include "storage/ipc.h"
#include "utils/builtins.h"

#define KEYRING_MAX_BYTES (1024 * 1024)
#define KEYRING_CHECK_US (1000 * 1000)	/* how often the file is checked for changes */

typedef struct KeyEntry
{
	int32		version;
	bool		verified;		/* matches the fingerprint in key_versions */
	unsigned char key[KEY_BYTES];
} KeyEntry;

typedef struct Keyring
{
	char		path[MAXPGPATH];
	struct stat st;
	TimestampTz checked_at;		/* when st was last compared with the file */
	int			nkeys;
	int			newest;			/* index into keys */
	KeyEntry	keys[FLEXIBLE_ARRAY_MEMBER];
} Keyring;

static Keyring *ring = NULL;
static bool exit_hook = false;

static void
keyring_release(int code, Datum arg)
{
	if (ring)
		sodium_free(ring);		/* wipes before freeing */
	ring = NULL;
}

static bool
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev &&
		a->st_size == b->st_size && a->st_mtime == b->st_mtime &&
		a->st_ctime == b->st_ctime;
}

/*
 * Parses "<version> <hex>" lines of buf into r. Returns the 1-based number of
 * the first bad line, or 0 when all are good.
 */
static int
parse_keyring(char *buf, Keyring *r, int maxkeys)
{
	int			lineno = 0;
	char	   *line = buf;

	while (line && *line)
	{
		char	   *next = strchr(line, '\n');
		char	   *p = line;
		char	   *end;
		long		version;
		size_t		keylen;
		KeyEntry   *k;

		if (next)
			*next++ = '\0';
		lineno++;
		while (*p == ' ' || *p == '\t' || *p == '\r')
			p++;
		if (*p == '\0' || *p == '#')
		{
			line = next;
			continue;
		}
		version = strtol(p, &end, 10);
		if (end == p || version < 1 || version > PG_INT32_MAX ||
			(*end != ' ' && *end != '\t' && *end != ':') || r->nkeys >= maxkeys)
			return lineno;
		p = end + 1;
		while (*p == ' ' || *p == '\t')
			p++;
		k = &r->keys[r->nkeys];
		if (sodium_hex2bin(k->key, KEY_BYTES, p, strlen(p), NULL, &keylen, (const char **) &end) != 0 ||
			keylen != KEY_BYTES || strspn(end, " \t\r") != strlen(end))
			return lineno;
		for (int i = 0; i < r->nkeys; i++)
			if (r->keys[i].version == version)
				return lineno;
		k->version = (int32) version;
		if (r->nkeys == 0 || version > r->keys[r->newest].version)
			r->newest = r->nkeys;
		r->nkeys++;
		line = next;
	}
	return 0;
}

static void pg_attribute_noreturn()
keyring_error(const char *fmt, const char *path)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONFIG_FILE_ERROR), errmsg_internal(fmt, path), errhidestmt(true)));
}

/* Checks what stat says of the file before it is read. */
static void
keyring_check_file(const char *path, const struct stat *st)
{
	if (!S_ISREG(st->st_mode) || st->st_size > KEYRING_MAX_BYTES || strlen(path) >= MAXPGPATH)
		keyring_error("keyring file \"%s\" is not a regular file of at most 1 MB", path);
	if (st->st_mode & (S_IRWXG | S_IRWXO))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("keyring file \"%s\" is accessible by group or others", path),
				 errhint("Make it readable by the server's user only (chmod 600)."),
				 errhidestmt(true)));
}

/*
 * Reads and parses the file into a new keyring in guarded memory; 0, or the
 * first bad line, or -1 if it could not be read whole.
 */
static int
keyring_read(const char *path, const struct stat *st, Keyring **out)
{
	int			fd = open(path, O_RDONLY | O_CLOEXEC);
	int			maxkeys = st->st_size / 66 + 1;	/* a key line is at least 66 bytes */
	size_t		size = offsetof(Keyring, keys) + maxkeys * sizeof(KeyEntry);
	char	   *buf;
	Keyring    *r;
	ssize_t		got;
	int			badline;

	if (fd < 0)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("could not read keyring file \"%s\": %m", path), errhidestmt(true)));
	buf = sodium_malloc(st->st_size + 1);
	r = sodium_malloc(size);
	if (buf == NULL || r == NULL)
	{
		close(fd);
		if (buf)
			sodium_free(buf);
		if (r)
			sodium_free(r);
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory for the keyring")));
	}
	got = read(fd, buf, st->st_size);
	close(fd);
	buf[got > 0 ? got : 0] = '\0';
	memset(r, 0, size);
	badline = (got != st->st_size) ? -1 : parse_keyring(buf, r, maxkeys);
	sodium_free(buf);
	if (badline == 0 && r->nkeys > 0)
		*out = r;
	else
		sodium_free(r);
	return badline;
}

/* Loads the keyring if it changed; errors (and forgets the old one) if unusable. */
static void
keyring_load(void)
{
	const char *path = sdr_keyring_file;
	TimestampTz now = GetCurrentTimestamp();
	struct stat st;
	Keyring    *r = NULL;
	int			badline;

	if (path == NULL || path[0] == '\0')
	{
		keyring_release(0, 0);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("sdr_creds.keyring_file is not set"),
				 errhint("Set it in postgresql.conf to a keyring file outside the data directory."),
				 errhidestmt(true)));
	}
	/* A stat() per call costs more than the rest of a lookup: look at most once a second. */
	if (ring && strcmp(ring->path, path) == 0 && now - ring->checked_at < KEYRING_CHECK_US)
		return;
	if (stat(path, &st) != 0)
	{
		keyring_release(0, 0);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("could not read keyring file \"%s\": %m", path), errhidestmt(true)));
	}
	if (ring && strcmp(ring->path, path) == 0 && same_file(&ring->st, &st))
	{
		ring->checked_at = now;
		return;
	}
	keyring_release(0, 0);
	keyring_check_file(path, &st);
	badline = keyring_read(path, &st, &r);
	if (badline < 0)
		keyring_error("could not read keyring file \"%s\"", path);
	if (badline > 0)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("keyring file \"%s\", line %d: expected \"<version> <64 hex digits>\" with a new positive version",
						path, badline),
				 errhidestmt(true)));
	if (r == NULL)
		keyring_error("keyring file \"%s\" holds no keys", path);
	strlcpy(r->path, path, MAXPGPATH);
	r->st = st;
	r->checked_at = now;
	ring = r;
	if (!exit_hook)
	{
		on_proc_exit(keyring_release, 0);
		exit_hook = true;
	}
}

/*
 * Before a key first encrypts, its fingerprint (a keyed hash of a constant)
 * is recorded in key_versions, or compared with the one recorded there: a
 * wrong keyring is refused before it overwrites anything.
 */
static void
verify_key(KeyEntry *k)
{
	unsigned char fp[16];
	static const char check[] = "sdr_creds key check";
	Datum		args[2];
	bool		isnull;
	bool		match;

	crypto_generichash(fp, sizeof(fp), (const unsigned char *) check, sizeof(check) - 1,
					   k->key, KEY_BYTES);
	args[0] = Int32GetDatum(k->version);
	args[1] = PointerGetDatum(cstring_to_text_with_len((const char *) fp, sizeof(fp)));
	SPI_connect();
	stmt_run(S_KEY_VERSION_RECORD, args, NULL, false, 0);
	if (stmt_run(S_KEY_VERSION_MATCHES, args, NULL, false, 1) != 1)
		elog(ERROR, "sdr_creds: could not check the key fingerprint");
	match = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	if (!match)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("keyring key version %d is not the key that encrypted this database's credentials",
						k->version),
				 errdetail("Nothing was written."),
				 errhint("Check sdr_creds.keyring_file."),
				 errhidestmt(true)));
	k->verified = true;
}

const unsigned char *
keyring_newest(int32 *version)
{
	KeyEntry   *k;

	keyring_load();
	k = &ring->keys[ring->newest];
	if (!k->verified)
		verify_key(k);
	*version = k->version;
	return k->key;
}

const unsigned char *
keyring_key(int32 version)
{
	keyring_load();
	for (int i = 0; i < ring->nkeys; i++)
		if (ring->keys[i].version == version)
			return ring->keys[i].key;
	return NULL;
}
