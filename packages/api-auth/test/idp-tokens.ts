// Real tokens from the sample IdP; the helper lives in @gatehouse/testing (shared with apps/api).
export {
  type ApiTokenSource as IdpFixture,
  startApiTokenSource as startIdpFixture,
} from '@gatehouse/testing';
