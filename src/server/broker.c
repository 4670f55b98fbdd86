/* broker.c - broker-wide helpers shared by main and the handlers. */
#include <errno.h>
#include <string.h>

#include "common/fsutil.h"
#include "common/logger.h"
#include "common/properties.h"
#include "server/broker.h"

static void save_dynamic_entry(void *arg, const char *key, const char *value)
{
    properties_write_entry(arg, key, value);
}

int broker_save_dynamic_config(broker_t *b)
{
    buf_t out;
    buf_init(&out);
    broker_config_foreach_dynamic(b->config, false, save_dynamic_entry, &out);
    int rc = out.oom ? -1 : fs_write_atomic(b->broker_config_path, out.data ? (const char *)out.data : "", out.len);
    if (rc != 0)
        LOG_ERROR("config", "cannot save dynamic broker configs to %s: %s", b->broker_config_path, strerror(errno));
    buf_free(&out);
    return rc;
}

