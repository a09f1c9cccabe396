// The name rules live in the domain (src/domain/names.ts); kept here for importers not yet moved.
export { NAME_PATTERN, UUID_V4_PATTERN, isProcIdOf } from '../domain/names.js';
