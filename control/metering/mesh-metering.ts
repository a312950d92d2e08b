/**
 * Mesh spec.metering as the control plane uses it: the palisade.v1.Metering sidecars get in
 * MeshConfig, and the report interval the LRS server suggests. Omitted fields take
 * METERING_DEFAULTS (header x-tenant-id, 10s, 10 000 tenants).
 */
import { create } from '@bufbuild/protobuf';
import { DurationSchema } from '@bufbuild/protobuf/wkt';
import { MeteringSchema, type Metering } from '../../xds/gen/palisade/v1/mesh_pb.js';
import { METERING_DEFAULTS, type MeshSpecDocument } from '../config/schema/mesh.ts';
import { parseDuration } from '../config/schema.ts';

type MeteringDocument = MeshSpecDocument['metering'];

/** The report interval of a Mesh's metering settings, ms (default 10 000). */
export function reportIntervalMs(metering: MeteringDocument): number {
  return parseDuration(metering?.reportInterval ?? METERING_DEFAULTS.reportInterval);
}

/** palisade.v1.Metering for MeshConfig; the interval is passed as written (PGV bounds it to 100ms..1h). */
export function meteringConfig(metering: MeteringDocument): Metering {
  const tenant = metering?.tenant ?? { header: METERING_DEFAULTS.tenantHeader };
  const ms = reportIntervalMs(metering);
  return create(MeteringSchema, {
    tenant: { source: 'jwtClaim' in tenant ? { case: 'jwtClaim', value: tenant.jwtClaim } : { case: 'header', value: tenant.header.toLowerCase() } },
    reportInterval: create(DurationSchema, { seconds: BigInt(Math.floor(ms / 1000)), nanos: Math.round((ms % 1000) * 1e6) }),
    maxTenants: metering?.maxTenants ?? METERING_DEFAULTS.maxTenants,
  });
}
