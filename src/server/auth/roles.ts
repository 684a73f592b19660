/**
 * Roles of the control plane and what each may do. Separation of duties: an approver approves and
 * rejects but does not drive rollouts; a deployer drives them but does not approve. Admin does both and
 * manages tokens. Every role reads.
 */

/** The roles a token or an OIDC rule grants. */
export const ROLES = ['viewer', 'deployer', 'approver', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** What a call needs. `read` covers every GET. */
export const PERMISSIONS = ['read', 'approve', 'reject', 'pause', 'resume', 'abort', 'promote', 'drain', 'flag', 'tokens'] as const;
export type Permission = (typeof PERMISSIONS)[number];

const GRANTS: Readonly<Record<Role, readonly Permission[]>> = {
  viewer: ['read'],
  deployer: ['read', 'pause', 'resume', 'abort', 'promote', 'drain', 'flag'],
  approver: ['read', 'approve', 'reject'],
  admin: PERMISSIONS,
};

/** True when `role` is one of {@link ROLES}. */
export function isRole(role: string): role is Role {
  return (ROLES as readonly string[]).includes(role);
}

/** Whether `role` may do `permission`. */
export function allows(role: Role, permission: Permission): boolean {
  return GRANTS[role].includes(permission);
}

/** The weakest roles that may do `permission` (for error messages and the OpenAPI document). */
export function rolesFor(permission: Permission): Role[] {
  return ROLES.filter((r) => allows(r, permission));
}

/** Who is calling: resolved from a bearer token. */
export interface Identity {
  /** The name written into the audit log (a token's name, an OIDC subject, the local admin's user). */
  readonly id: string;
  readonly role: Role;
  /** How it was learnt: `token:<id>`, `oidc:<issuer>`, `local`. */
  readonly via: string;
}

/** The `can` map of `GET /api/v1/whoami`: which buttons the dashboard shows. */
export function capabilities(role: Role): Record<Exclude<Permission, 'read'>, boolean> {
  const out = {} as Record<Exclude<Permission, 'read'>, boolean>;
  for (const p of PERMISSIONS) if (p !== 'read') out[p] = allows(role, p);
  return out;
}
