/*
 * wrk_client_cert.so: lets wrk present a TLS client certificate, which wrk 4.x cannot do by
 * itself. Loaded with LD_PRELOAD into a wrk dynamically linked to OpenSSL, it wraps
 * SSL_CTX_new (wrk makes one context, at start-up, for every connection) and loads the
 * certificate chain and key named by the environment into it:
 *
 *   WRK_CLIENT_CERT=client.pem [WRK_CLIENT_KEY=client.key] \
 *       LD_PRELOAD=$PWD/wrk_client_cert.so wrk ... https://...
 *
 * WRK_CLIENT_CERT: PEM, the certificate then any intermediates; WRK_CLIENT_KEY: the PEM
 * private key (default: the same file). Without WRK_CLIENT_CERT, wrk runs as usual. A file
 * that does not load, or a key that does not match, stops wrk with status 1 before any
 * request. Built by bench/lib.sh (`cc -shared -fPIC`); no OpenSSL headers needed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_method_st SSL_METHOD;

#define PEM_FILETYPE 1 /* SSL_FILETYPE_PEM */

static void *symbol(void *handle, const char *name) {
    void *found = dlsym(handle, name);
    if (found == NULL) {
        fprintf(stderr, "wrk_client_cert: %s not found (is wrk linked to OpenSSL?)\n", name);
        exit(1);
    }
    return found;
}

SSL_CTX *SSL_CTX_new(const SSL_METHOD *method) {
    SSL_CTX *(*real_new)(const SSL_METHOD *) = symbol(RTLD_NEXT, "SSL_CTX_new");
    SSL_CTX *ctx = real_new(method);
    const char *cert = getenv("WRK_CLIENT_CERT");
    const char *key = getenv("WRK_CLIENT_KEY");
    if (ctx == NULL || cert == NULL || *cert == '\0') {
        return ctx;
    }
    if (key == NULL || *key == '\0') {
        key = cert;
    }
    int (*use_chain)(SSL_CTX *, const char *) =
        symbol(RTLD_DEFAULT, "SSL_CTX_use_certificate_chain_file");
    int (*use_key)(SSL_CTX *, const char *, int) =
        symbol(RTLD_DEFAULT, "SSL_CTX_use_PrivateKey_file");
    int (*check_key)(const SSL_CTX *) = symbol(RTLD_DEFAULT, "SSL_CTX_check_private_key");
    if (use_chain(ctx, cert) != 1) {
        fprintf(stderr, "wrk_client_cert: no certificate chain in %s\n", cert);
        exit(1);
    }
    if (use_key(ctx, key, PEM_FILETYPE) != 1 || check_key(ctx) != 1) {
        fprintf(stderr, "wrk_client_cert: no private key for the certificate in %s\n", key);
        exit(1);
    }
    return ctx;
}
