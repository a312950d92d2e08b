/** The ConfigSource of resources that come over the same ADS stream (EDS, RDS, SDS). */
import { create } from '@bufbuild/protobuf';
import { ApiVersion, ConfigSourceSchema } from '../../xds/gen/envoy/config/core/v3/config_source_pb.js';

/** Resources named here come over the same ADS stream. */
export const ADS_SOURCE = create(ConfigSourceSchema, { resourceApiVersion: ApiVersion.V3, configSourceSpecifier: { case: 'ads', value: {} } });
