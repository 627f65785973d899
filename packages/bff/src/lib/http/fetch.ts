// The one type every module that talks to the identity provider takes its `fetch` as (the `fetch`
// option of createBff): a leaf, so low modules such as dpop/ need not import the options.

/** `fetch` as used for every request to the identity provider. */
export type FetchLike = (input: string | URL, init?: RequestInit) => Promise<Response>;
