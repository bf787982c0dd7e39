// ps_impl.h: ps/-private helpers shared by the service and the client:
// converting job configurations to and from their protobuf form.
#ifndef CANOPY_PS_IMPL_H
#define CANOPY_PS_IMPL_H

#include "ps.pb-c.h"
#include "ps/ps.h"

// ps_wire_optim_to_pb fills o (whose strings point at static names) from c.
void ps_wire_optim_to_pb(const optim_cfg *c, Canopy__Ps__OptimizerConfig *o);

// ps_wire_cfg_from_pb fills cfg from a Configure request. Errors: CN_EINVAL
// with err naming the field (unknown optimizer, schedule or mode).
cn_err ps_wire_cfg_from_pb(const Canopy__Ps__ConfigureRequest *r, ps_shard_cfg *cfg, char *err,
                           size_t errlen);

// ps_wire_stats_from_pb fills st from a Stats reply.
void ps_wire_stats_from_pb(const Canopy__Ps__StatsReply *r, ps_stats *st);

#endif
