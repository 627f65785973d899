import { timingSafeEqual } from 'node:crypto';

/** Claims the sample IdP releases for a demo user (by scope: profile, email). */
export interface DemoUserClaims {
  name: string;
  given_name: string;
  family_name: string;
  email: string;
  email_verified: boolean;
}

/** A demo user. Passwords are plain text on purpose: this IdP exists only for the samples. */
export interface DemoUser {
  /** The login name and the `sub` claim. */
  username: string;
  password: string;
  claims: DemoUserClaims;
}

/** The sample users: `alice`/`alice` and `bob`/`bob`. */
export const DEMO_USERS: readonly DemoUser[] = Object.freeze([
  {
    username: 'alice',
    password: 'alice',
    claims: {
      name: 'Alice Liddell',
      given_name: 'Alice',
      family_name: 'Liddell',
      email: 'alice@example.com',
      email_verified: true,
    },
  },
  {
    username: 'bob',
    password: 'bob',
    claims: {
      name: 'Bob Builder',
      given_name: 'Bob',
      family_name: 'Builder',
      email: 'bob@example.com',
      email_verified: true,
    },
  },
]);

export function findUser(username: string): DemoUser | undefined {
  return DEMO_USERS.find((user) => user.username === username);
}

/** Returns the user when the password matches; compares in constant time like a real IdP should. */
export function checkPassword(username: string, password: string): DemoUser | undefined {
  const user = findUser(username);
  const expected = Buffer.from(user?.password ?? 'x'.repeat(32));
  const given = Buffer.from(password);
  const same = expected.length === given.length && timingSafeEqual(expected, given);
  return user && same ? user : undefined;
}
