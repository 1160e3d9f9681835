/*
 * radload: a lean RADIUS accounting load generator for bench/compare.py.
 *
 * It sends the Accounting-Requests of a prepared file to one server, keeps a
 * window of them in flight (or sends at a fixed rate), verifies every
 * Accounting-Response against the shared secret, resends what is not
 * answered in time, and prints one machine-readable summary line with its
 * own CPU time. It exists because a general-purpose client costs more CPU
 * per request than the server it measures; it must never do per-request
 * work it can avoid: no allocation, no logging, one system call per batch.
 * It only ever talks to the address it is given.
 *
 * Input file: records of a 2-byte big-endian length followed by that many
 * bytes of RADIUS attributes (one Accounting-Request each). The header and
 * the Request Authenticator are added here (RFC 2866 section 3).
 *
 * Build: gcc -O2 -o radload radload.c        (plain C99 + Linux)
 * Usage: radload [-w WINDOW] [-t TIMEOUT_S] [-r RETRIES] [-R RATE]
 *                [-d DEADLINE_S] -s SECRET -f FILE HOST:PORT
 *        radload --self-test      (MD5 against RFC 1321's test suite)
 *
 *   -w  requests in flight at most (512); one socket per 128 of them
 *   -t  seconds before an unanswered request is sent again (3)
 *   -r  times it is sent again before it counts as lost (10)
 *   -R  first sends per second, evenly spaced (default: as fast as -w allows)
 *   -d  seconds after which it stops whatever is left (600)
 *
 * Output, one line: sent (requests sent at least once), accepted (valid
 * answers), bad (answers that match no request: wrong code, length or
 * authenticator), stale (a second answer to a request already answered),
 * lost, unfinished (neither answered nor lost at the deadline),
 * retransmits, send_errors, elapsed_s (first send to last answer or loss),
 * rate (accepted per second), send_rate (first sends per second),
 * p50_ms / p99_ms / max_ms (first send to valid answer), cpu_user_s,
 * cpu_sys_s, cpu_us_per_request. Exit status 0 when every request was
 * accepted, 1 when not, 2 on a usage or system error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ MD5 */
/* MD5 as specified in RFC 1321: 64-byte blocks, little-endian words. */

typedef struct {
    uint32_t state[4];
    uint64_t total;      /* bytes hashed so far */
    uint8_t pending[64]; /* the start of an incomplete block */
} md5_ctx;

/* T[i] = floor(2^32 * abs(sin(i + 1))), RFC 1321 section 3.4 */
static const uint32_t md5_t[64] = {
    0xd76aa478u, 0xe8c7b756u, 0x242070dbu, 0xc1bdceeeu,
    0xf57c0fafu, 0x4787c62au, 0xa8304613u, 0xfd469501u,
    0x698098d8u, 0x8b44f7afu, 0xffff5bb1u, 0x895cd7beu,
    0x6b901122u, 0xfd987193u, 0xa679438eu, 0x49b40821u,
    0xf61e2562u, 0xc040b340u, 0x265e5a51u, 0xe9b6c7aau,
    0xd62f105du, 0x02441453u, 0xd8a1e681u, 0xe7d3fbc8u,
    0x21e1cde6u, 0xc33707d6u, 0xf4d50d87u, 0x455a14edu,
    0xa9e3e905u, 0xfcefa3f8u, 0x676f02d9u, 0x8d2a4c8au,
    0xfffa3942u, 0x8771f681u, 0x6d9d6122u, 0xfde5380cu,
    0xa4beea44u, 0x4bdecfa9u, 0xf6bb4b60u, 0xbebfbc70u,
    0x289b7ec6u, 0xeaa127fau, 0xd4ef3085u, 0x04881d05u,
    0xd9d4d039u, 0xe6db99e5u, 0x1fa27cf8u, 0xc4ac5665u,
    0xf4292244u, 0x432aff97u, 0xab9423a7u, 0xfc93a039u,
    0x655b59c3u, 0x8f0ccc92u, 0xffeff47du, 0x85845dd1u,
    0x6fa87e4fu, 0xfe2ce6e0u, 0xa3014314u, 0x4e0811a1u,
    0xf7537e82u, 0xbd3af235u, 0x2ad7d2bbu, 0xeb86d391u,
};

#define ROTL32(v, n) (((v) << (n)) | ((v) >> (32 - (n))))
#define MD5_F(x, y, z) (((x) & (y)) | (~(x) & (z)))
#define MD5_G(x, y, z) (((x) & (z)) | ((y) & ~(z)))
#define MD5_H(x, y, z) ((x) ^ (y) ^ (z))
#define MD5_I(x, y, z) ((y) ^ ((x) | ~(z)))
/* one operation of a round: a = b + ((a + fn(b,c,d) + X[k] + T[i]) <<< s) */
#define MD5_STEP(fn, a, b, c, d, xk, ti, s)        \
    do {                                           \
        (a) += fn((b), (c), (d)) + (xk) + (ti);    \
        (a) = ROTL32((a), (s));                    \
        (a) += (b);                                \
    } while (0)

static void md5_block(uint32_t state[4], const uint8_t *block)
{
    uint32_t x[16];
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    int i;

    for (i = 0; i < 16; i++)
        x[i] = (uint32_t)block[4 * i] | (uint32_t)block[4 * i + 1] << 8 |
               (uint32_t)block[4 * i + 2] << 16 | (uint32_t)block[4 * i + 3] << 24;
    /* round 1: words in order */
    for (i = 0; i < 16; i += 4) {
        MD5_STEP(MD5_F, a, b, c, d, x[i], md5_t[i], 7);
        MD5_STEP(MD5_F, d, a, b, c, x[i + 1], md5_t[i + 1], 12);
        MD5_STEP(MD5_F, c, d, a, b, x[i + 2], md5_t[i + 2], 17);
        MD5_STEP(MD5_F, b, c, d, a, x[i + 3], md5_t[i + 3], 22);
    }
    /* round 2: word (1 + 5j) mod 16 for operation j */
    for (i = 16; i < 32; i += 4) {
        MD5_STEP(MD5_G, a, b, c, d, x[(5 * i + 1) & 15], md5_t[i], 5);
        MD5_STEP(MD5_G, d, a, b, c, x[(5 * i + 6) & 15], md5_t[i + 1], 9);
        MD5_STEP(MD5_G, c, d, a, b, x[(5 * i + 11) & 15], md5_t[i + 2], 14);
        MD5_STEP(MD5_G, b, c, d, a, x[(5 * i + 16) & 15], md5_t[i + 3], 20);
    }
    /* round 3: word (5 + 3j) mod 16 */
    for (i = 32; i < 48; i += 4) {
        MD5_STEP(MD5_H, a, b, c, d, x[(3 * i + 5) & 15], md5_t[i], 4);
        MD5_STEP(MD5_H, d, a, b, c, x[(3 * i + 8) & 15], md5_t[i + 1], 11);
        MD5_STEP(MD5_H, c, d, a, b, x[(3 * i + 11) & 15], md5_t[i + 2], 16);
        MD5_STEP(MD5_H, b, c, d, a, x[(3 * i + 14) & 15], md5_t[i + 3], 23);
    }
    /* round 4: word 7j mod 16 */
    for (i = 48; i < 64; i += 4) {
        MD5_STEP(MD5_I, a, b, c, d, x[(7 * i) & 15], md5_t[i], 6);
        MD5_STEP(MD5_I, d, a, b, c, x[(7 * i + 7) & 15], md5_t[i + 1], 10);
        MD5_STEP(MD5_I, c, d, a, b, x[(7 * i + 14) & 15], md5_t[i + 2], 15);
        MD5_STEP(MD5_I, b, c, d, a, x[(7 * i + 21) & 15], md5_t[i + 3], 21);
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
}

static void md5_init(md5_ctx *ctx)
{
    ctx->state[0] = 0x67452301u;
    ctx->state[1] = 0xefcdab89u;
    ctx->state[2] = 0x98badcfeu;
    ctx->state[3] = 0x10325476u;
    ctx->total = 0;
}

static void md5_update(md5_ctx *ctx, const void *data, size_t size)
{
    const uint8_t *bytes = data;
    size_t used = (size_t)(ctx->total & 63);

    ctx->total += size;
    if (used) {
        size_t take = 64 - used;
        if (take > size) {
            memcpy(ctx->pending + used, bytes, size);
            return;
        }
        memcpy(ctx->pending + used, bytes, take);
        md5_block(ctx->state, ctx->pending);
        bytes += take;
        size -= take;
    }
    for (; size >= 64; bytes += 64, size -= 64)
        md5_block(ctx->state, bytes);
    memcpy(ctx->pending, bytes, size);
}

static void md5_final(md5_ctx *ctx, uint8_t digest[16])
{
    /* a 1 bit, zeros up to 56 mod 64, then the bit length little-endian */
    uint64_t bits = ctx->total * 8;
    size_t used = (size_t)(ctx->total & 63);
    int i;

    ctx->pending[used++] = 0x80;
    if (used > 56) {
        memset(ctx->pending + used, 0, 64 - used);
        md5_block(ctx->state, ctx->pending);
        used = 0;
    }
    memset(ctx->pending + used, 0, 56 - used);
    for (i = 0; i < 8; i++)
        ctx->pending[56 + i] = (uint8_t)(bits >> (8 * i));
    md5_block(ctx->state, ctx->pending);
    for (i = 0; i < 16; i++)
        digest[i] = (uint8_t)(ctx->state[i / 4] >> (8 * (i % 4)));
}

static int self_test(void)
{
    /* the test suite of RFC 1321 appendix A.5 */
    static const char *const vectors[][2] = {
        {"", "d41d8cd98f00b204e9800998ecf8427e"},
        {"a", "0cc175b9c0f1b6a831c399e269772661"},
        {"abc", "900150983cd24fb0d6963f7d28e17f72"},
        {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
        {"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
        {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
         "d174ab98d277d9f5a5611c2c9f419d9f"},
        {"1234567890123456789012345678901234567890"
         "1234567890123456789012345678901234567890",
         "57edf4a22be3c955ac49da2e2107b67a"},
    };
    size_t v, split;
    int failures = 0, checks = 0;

    for (v = 0; v < sizeof vectors / sizeof vectors[0]; v++) {
        const char *text = vectors[v][0];
        size_t size = strlen(text);
        /* whole, then cut in two at every position (the buffering paths) */
        for (split = 0; split <= size; split++) {
            md5_ctx ctx;
            uint8_t digest[16];
            char hex[33];
            int i;

            md5_init(&ctx);
            md5_update(&ctx, text, split);
            md5_update(&ctx, text + split, size - split);
            md5_final(&ctx, digest);
            for (i = 0; i < 16; i++)
                snprintf(hex + 2 * i, 3, "%02x", digest[i]);
            checks++;
            if (strcmp(hex, vectors[v][1]) != 0) {
                failures++;
                if (split == 0)
                    fprintf(stderr, "MD5(\"%s\") = %s, expected %s\n", text, hex,
                            vectors[v][1]);
            }
        }
    }
    printf("self-test: %d MD5 checks (RFC 1321 A.5, split at every offset), %d failed\n",
           checks, failures);
    return failures ? 1 : 0;
}

/* ------------------------------------------------------------ the load */

#define HEADER 20
#define MAX_PACKET 4096
#define IDS 256     /* identifiers per source socket */
/* At most half of them in flight: an identifier answered waits behind the other
 * free ones before it is used again. Reused at once, it can reach a server that
 * has sent the answer but not yet finished the request (FreeRADIUS then logs a
 * "conflicting packet" and gives up the old one). */
#define IN_FLIGHT_PER_SOCKET 128
#define BATCH 64    /* datagrams per sendmmsg / recvmmsg */
#define NONE (-1)

enum { CODE_ACCOUNTING_REQUEST = 4, CODE_ACCOUNTING_RESPONSE = 5 };

struct slot {           /* one identifier of one source socket */
    uint8_t *packet;    /* the request as sent (kept for resends) */
    uint64_t first_ns;  /* first send: latency is measured from here */
    uint64_t last_ns;   /* latest send: the timeout runs from here */
    int32_t older, newer; /* the list of requests in flight by last send */
    uint16_t length;
    uint8_t sends;
    uint8_t busy;
    uint8_t has_previous; /* previous_auth holds the last answered request's */
    uint8_t previous_auth[16];
};

struct source {         /* one UDP socket and its 256 identifiers */
    int fd;
    int cap;            /* requests it may have in flight */
    int in_flight;
    int free_head, free_count;
    uint8_t free_ids[IDS]; /* ring: an identifier is reused as late as possible */
};

static struct {
    const uint8_t *data; /* the input file */
    uint32_t *offsets;   /* of each record's attributes in data */
    uint16_t *lengths;
    uint32_t total;
    uint16_t longest;
} input;

static struct source *sources;
static struct slot *slots;
static int source_count;
static int32_t oldest = NONE, newest = NONE; /* timeout list ends */
static const uint8_t *secret;
static size_t secret_length;
static uint32_t *latencies_us;

static uint32_t next_record, in_flight, accepted, bad, stale, lost, retransmits, send_errors;
static int window = 512, retries = 10;
static double timeout_s = 3.0, rate, deadline_s = 600.0;

static void die(const char *what)
{
    fprintf(stderr, "radload: %s: %s\n", what, strerror(errno));
    exit(2);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void load_input(const char *path)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    uint8_t *data;
    size_t pos, got = 0;
    uint32_t count = 0;

    if (fd < 0 || fstat(fd, &st) < 0)
        die(path);
    data = malloc((size_t)st.st_size + 1);
    if (!data)
        die("malloc");
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, data + got, (size_t)st.st_size - got);
        if (n <= 0)
            die(path);
        got += (size_t)n;
    }
    close(fd);
    for (pos = 0; pos + 2 <= got; count++)
        pos += 2 + ((size_t)data[pos] << 8 | data[pos + 1]);
    if (pos != got) {
        fprintf(stderr, "radload: %s: the last record is cut short\n", path);
        exit(2);
    }
    input.offsets = malloc(sizeof *input.offsets * (count ? count : 1));
    input.lengths = malloc(sizeof *input.lengths * (count ? count : 1));
    if (!input.offsets || !input.lengths)
        die("malloc");
    for (pos = 0, count = 0; pos < got; count++) {
        uint16_t length = (uint16_t)(data[pos] << 8 | data[pos + 1]);
        if (length > MAX_PACKET - HEADER) {
            fprintf(stderr, "radload: %s: record %u: %u bytes of attributes, at most %d\n",
                    path, count, length, MAX_PACKET - HEADER);
            exit(2);
        }
        input.offsets[count] = (uint32_t)(pos + 2);
        input.lengths[count] = length;
        if (length > input.longest)
            input.longest = length;
        pos += 2 + length;
    }
    input.data = data;
    input.total = count;
}

static void open_sources(const char *server)
{
    char host[256];
    const char *colon = strrchr(server, ':');
    struct addrinfo hints, *found;
    size_t host_length;
    int i, rc;

    if (!colon || colon == server || (size_t)(colon - server) >= sizeof host) {
        fprintf(stderr, "radload: server must be HOST:PORT, not %s\n", server);
        exit(2);
    }
    host_length = (size_t)(colon - server);
    if (server[0] == '[' && host_length > 2 && server[host_length - 1] == ']') {
        memcpy(host, server + 1, host_length - 2);
        host[host_length - 2] = 0;
    } else {
        memcpy(host, server, host_length);
        host[host_length] = 0;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    rc = getaddrinfo(host, colon + 1, &hints, &found);
    if (rc != 0) {
        fprintf(stderr, "radload: %s: %s\n", server, gai_strerror(rc));
        exit(2);
    }
    source_count = (window + IN_FLIGHT_PER_SOCKET - 1) / IN_FLIGHT_PER_SOCKET;
    sources = calloc((size_t)source_count, sizeof *sources);
    slots = calloc((size_t)source_count * IDS, sizeof *slots);
    if (!sources || !slots)
        die("calloc");
    for (i = 0; i < source_count; i++) {
        struct source *src = &sources[i];
        /* room for a whole window of answers: the default buffer drops bursts */
        int buffer = 4 * 1024 * 1024, j;

        src->fd = socket(found->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (src->fd < 0)
            die("socket");
        if (setsockopt(src->fd, SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof buffer) < 0)
            setsockopt(src->fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
        if (setsockopt(src->fd, SOL_SOCKET, SO_SNDBUFFORCE, &buffer, sizeof buffer) < 0)
            setsockopt(src->fd, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
        /* connected: the kernel drops datagrams from anyone but the server */
        if (connect(src->fd, found->ai_addr, found->ai_addrlen) < 0)
            die("connect");
        src->cap = window / source_count + (i < window % source_count);
        src->free_count = IDS;
        for (j = 0; j < IDS; j++)
            src->free_ids[j] = (uint8_t)j;
    }
    freeaddrinfo(found);
    for (i = 0; i < source_count * IDS; i++) {
        slots[i].packet = malloc((size_t)HEADER + input.longest);
        if (!slots[i].packet)
            die("malloc");
    }
}

static void list_remove(int32_t index)
{
    struct slot *s = &slots[index];
    if (s->older != NONE)
        slots[s->older].newer = s->newer;
    else
        oldest = s->newer;
    if (s->newer != NONE)
        slots[s->newer].older = s->older;
    else
        newest = s->older;
}

static void list_append(int32_t index)
{
    struct slot *s = &slots[index];
    s->older = newest;
    s->newer = NONE;
    if (newest != NONE)
        slots[newest].newer = index;
    else
        oldest = index;
    newest = index;
}

/* the request is over (answered or lost): its identifier can be reused */
static void release(int32_t index)
{
    struct source *src = &sources[index / IDS];
    struct slot *s = &slots[index];

    list_remove(index);
    s->busy = 0;
    memcpy(s->previous_auth, s->packet + 4, 16);
    s->has_previous = 1;
    src->free_ids[(src->free_head + src->free_count) % IDS] = (uint8_t)(index % IDS);
    src->free_count++;
    src->in_flight--;
    in_flight--;
}

/* RFC 2866 4.2: MD5(Code + Identifier + Length + Request Authenticator + Attributes + Secret) */
static int response_matches(const uint8_t *response, uint16_t length, const uint8_t *request_auth)
{
    md5_ctx ctx;
    uint8_t digest[16];

    md5_init(&ctx);
    md5_update(&ctx, response, 4);
    md5_update(&ctx, request_auth, 16);
    md5_update(&ctx, response + HEADER, (size_t)length - HEADER);
    md5_update(&ctx, secret, secret_length);
    md5_final(&ctx, digest);
    return memcmp(digest, response + 4, 16) == 0;
}

static void answer(int source, const uint8_t *response, size_t size, uint64_t now)
{
    int32_t index;
    struct slot *s;
    uint16_t length;

    if (size < HEADER) {
        bad++;
        return;
    }
    length = (uint16_t)(response[2] << 8 | response[3]);
    index = source * IDS + response[1];
    s = &slots[index];
    if (length < HEADER || length > size || response[0] != CODE_ACCOUNTING_RESPONSE) {
        bad++;
    } else if (s->busy && response_matches(response, length, s->packet + 4)) {
        uint64_t waited = (now - s->first_ns) / 1000;
        latencies_us[accepted++] = waited > UINT32_MAX ? UINT32_MAX : (uint32_t)waited;
        release(index);
    } else if (s->has_previous && response_matches(response, length, s->previous_auth)) {
        /* a second answer to a request already answered (it had been resent) */
        stale++;
    } else {
        bad++;
    }
}

static void receive(int source)
{
    static uint8_t buffers[BATCH][MAX_PACKET];
    static struct iovec iov[BATCH];
    static struct mmsghdr messages[BATCH];
    static int prepared;
    int i, n;

    if (!prepared) {
        for (i = 0; i < BATCH; i++) {
            iov[i].iov_base = buffers[i];
            iov[i].iov_len = MAX_PACKET;
            messages[i].msg_hdr.msg_iov = &iov[i];
            messages[i].msg_hdr.msg_iovlen = 1;
        }
        prepared = 1;
    }
    for (;;) {
        uint64_t now;
        n = recvmmsg(sources[source].fd, messages, BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EINTR || errno == ECONNREFUSED)
                continue; /* ICMP from a server not (yet) listening: resends cover it */
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            die("recvmmsg");
        }
        now = now_ns();
        for (i = 0; i < n; i++)
            answer(source, buffers[i], messages[i].msg_len, now);
        if (n < BATCH)
            return;
    }
}

/* resend or give up on what has waited `timeout_s` since its last send */
static void expire(uint64_t now, uint64_t timeout_ns)
{
    while (oldest != NONE && slots[oldest].last_ns + timeout_ns <= now) {
        int32_t index = oldest;
        struct slot *s = &slots[index];

        if (s->sends > retries) {
            lost++;
            release(index);
            continue;
        }
        /* same packet, same identifier, same socket: a duplicate to the server */
        if (send(sources[index / IDS].fd, s->packet, s->length, 0) < 0)
            send_errors++;
        s->sends++;
        retransmits++;
        s->last_ns = now;
        list_remove(index);
        list_append(index);
    }
}

static void build(int32_t index, uint32_t record)
{
    struct slot *s = &slots[index];
    uint16_t attributes = input.lengths[record];
    uint16_t length = (uint16_t)(HEADER + attributes);
    md5_ctx ctx;

    s->packet[0] = CODE_ACCOUNTING_REQUEST;
    s->packet[1] = (uint8_t)(index % IDS);
    s->packet[2] = (uint8_t)(length >> 8);
    s->packet[3] = (uint8_t)length;
    memset(s->packet + 4, 0, 16);
    memcpy(s->packet + HEADER, input.data + input.offsets[record], attributes);
    /* RFC 2866 3: MD5(Code + Identifier + Length + 16 zero octets + Attributes + Secret) */
    md5_init(&ctx);
    md5_update(&ctx, s->packet, length);
    md5_update(&ctx, secret, secret_length);
    md5_final(&ctx, s->packet + 4);
    s->length = length;
}

/* first sends of new requests, up to `budget`; returns 0 when a socket was full */
static int send_new(uint32_t budget, uint64_t now)
{
    static struct iovec iov[BATCH];
    static struct mmsghdr messages[BATCH];
    static int32_t taken[BATCH];
    static int turn;
    int tried;

    for (tried = 0; budget > 0 && tried < source_count; turn = (turn + 1) % source_count) {
        struct source *src = &sources[turn];
        uint32_t n = (uint32_t)(src->cap - src->in_flight), k;
        int sent;

        if (n > (uint32_t)src->free_count)
            n = (uint32_t)src->free_count;
        if (n > budget)
            n = budget;
        if (n > BATCH)
            n = BATCH;
        if (n == 0) {
            tried++;
            continue;
        }
        tried = 0;
        for (k = 0; k < n; k++) {
            int32_t index = turn * IDS + src->free_ids[src->free_head];
            struct slot *s = &slots[index];

            src->free_head = (src->free_head + 1) % IDS;
            src->free_count--;
            build(index, next_record + k);
            s->busy = 1;
            s->sends = 1;
            s->first_ns = s->last_ns = now;
            list_append(index);
            taken[k] = index;
            iov[k].iov_base = s->packet;
            iov[k].iov_len = s->length;
            memset(&messages[k].msg_hdr, 0, sizeof messages[k].msg_hdr);
            messages[k].msg_hdr.msg_iov = &iov[k];
            messages[k].msg_hdr.msg_iovlen = 1;
        }
        do
            sent = sendmmsg(src->fd, messages, n, 0);
        while (sent < 0 && (errno == EINTR || errno == ECONNREFUSED));
        if (sent < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS)
                die("sendmmsg");
            sent = 0;
        }
        /* what the kernel did not take goes back, identifiers in their order */
        for (k = n; k-- > (uint32_t)sent;) {
            struct slot *s = &slots[taken[k]];
            list_remove(taken[k]);
            s->busy = 0;
            src->free_head = (src->free_head + IDS - 1) % IDS;
            src->free_ids[src->free_head] = (uint8_t)(taken[k] % IDS);
            src->free_count++;
        }
        next_record += (uint32_t)sent;
        src->in_flight += sent;
        in_flight += (uint32_t)sent;
        budget -= (uint32_t)sent;
        if ((uint32_t)sent < n)
            return 0;
    }
    return 1;
}

static int by_value(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static double percentile_ms(double p)
{
    size_t rank;
    if (accepted == 0)
        return 0.0;
    rank = (size_t)(p / 100.0 * accepted + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > accepted)
        rank = accepted;
    return latencies_us[rank - 1] / 1000.0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: radload [-w WINDOW] [-t TIMEOUT_S] [-r RETRIES] [-R RATE] [-d DEADLINE_S]\n"
            "               -s SECRET -f FILE HOST:PORT\n"
            "       radload --self-test\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    uint64_t start, timeout_ns, deadline_ns, last_first_send = 0, finished;
    struct epoll_event events[64];
    struct rusage usage_self;
    double elapsed, cpu_user, cpu_sys;
    int ep, opt, i;

    if (argc == 2 && strcmp(argv[1], "--self-test") == 0)
        return self_test();
    while ((opt = getopt(argc, argv, "w:t:r:R:d:s:f:")) != -1) {
        switch (opt) {
        case 'w': window = atoi(optarg); break;
        case 't': timeout_s = atof(optarg); break;
        case 'r': retries = atoi(optarg); break;
        case 'R': rate = atof(optarg); break;
        case 'd': deadline_s = atof(optarg); break;
        case 's': secret = (const uint8_t *)optarg; secret_length = strlen(optarg); break;
        case 'f': path = optarg; break;
        default: usage();
        }
    }
    if (optind != argc - 1 || !path || !secret || window < 1 || timeout_s <= 0 ||
        retries < 0 || retries > 250 || rate < 0 || deadline_s <= 0)
        usage();
    load_input(path);
    latencies_us = malloc(sizeof *latencies_us * (input.total ? input.total : 1));
    if (!latencies_us)
        die("malloc");
    open_sources(argv[optind]);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    for (i = 0; i < source_count; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, sources[i].fd, &ev) < 0)
            die("epoll_ctl");
    }

    timeout_ns = (uint64_t)(timeout_s * 1e9);
    start = now_ns();
    deadline_ns = start + (uint64_t)(deadline_s * 1e9);
    finished = start;
    while (accepted + lost < input.total) {
        uint64_t now = now_ns(), wait_ns = 1000000000u;
        uint32_t budget = input.total - next_record;
        int sockets_took_all = 1, ready;

        if (now >= deadline_ns)
            break;
        expire(now, timeout_ns);
        if (budget > (uint32_t)window - in_flight)
            budget = (uint32_t)window - in_flight;
        if (rate > 0) {
            /* the k-th request (from 0) is due k / rate seconds after the start */
            uint64_t due = (uint64_t)((double)(now - start) * rate / 1e9) + 1;
            if (due > input.total)
                due = input.total;
            if (budget > due - next_record)
                budget = due > next_record ? (uint32_t)(due - next_record) : 0;
        }
        if (budget > 0) {
            uint32_t before = next_record;
            sockets_took_all = send_new(budget, now);
            if (next_record > before)
                last_first_send = now;
        }
        if (accepted + lost >= input.total) {
            finished = now;
            break;
        }
        /* sleep until an answer, the next timeout or the next request due */
        if (oldest != NONE) {
            uint64_t expiry = slots[oldest].last_ns + timeout_ns;
            wait_ns = expiry > now ? expiry - now : 0;
        }
        if (next_record < input.total && in_flight < (uint32_t)window) {
            if (!sockets_took_all)
                wait_ns = wait_ns < 1000000u ? wait_ns : 1000000u;
            else if (rate > 0) {
                uint64_t due = start + (uint64_t)((double)next_record * 1e9 / rate);
                uint64_t until = due > now ? due - now : 0;
                wait_ns = until < wait_ns ? until : wait_ns;
            }
        }
        if (deadline_ns - now < wait_ns)
            wait_ns = deadline_ns - now;
        ready = epoll_wait(ep, events, 64, (int)((wait_ns + 999999u) / 1000000u));
        if (ready < 0 && errno != EINTR)
            die("epoll_wait");
        for (i = 0; i < ready; i++)
            receive((int)events[i].data.u32);
        finished = now_ns();
    }
    if (accepted + lost < input.total)
        finished = now_ns();

    getrusage(RUSAGE_SELF, &usage_self);
    cpu_user = usage_self.ru_utime.tv_sec + usage_self.ru_utime.tv_usec / 1e6;
    cpu_sys = usage_self.ru_stime.tv_sec + usage_self.ru_stime.tv_usec / 1e6;
    elapsed = (double)(finished - start) / 1e9;
    qsort(latencies_us, accepted, sizeof *latencies_us, by_value);
    printf("sent=%u accepted=%u bad=%u stale=%u lost=%u unfinished=%u retransmits=%u "
           "send_errors=%u elapsed_s=%.3f rate=%.0f send_rate=%.0f p50_ms=%.3f p99_ms=%.3f "
           "max_ms=%.3f cpu_user_s=%.3f cpu_sys_s=%.3f cpu_us_per_request=%.2f\n",
           next_record, accepted, bad, stale, lost, input.total - accepted - lost, retransmits,
           send_errors, elapsed, elapsed > 0 ? accepted / elapsed : 0.0,
           last_first_send > start ? next_record / ((double)(last_first_send - start) / 1e9)
                                   : 0.0,
           percentile_ms(50), percentile_ms(99), accepted ? latencies_us[accepted - 1] / 1000.0 : 0.0,
           cpu_user, cpu_sys, next_record ? (cpu_user + cpu_sys) * 1e6 / next_record : 0.0);
    return accepted < input.total ? 1 : 0;
}
