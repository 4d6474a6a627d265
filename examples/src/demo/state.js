// What the console holds between refreshes, shared by its modules.

export const PREFIX = "/payments";
export const $ = (id) => document.getElementById(id);

export const state = {
  config: { sandbox: false, merchant_uids: [] },
  // Orders found by hand, shown after the configured ones.
  extraOrders: [],
  // merchant_uid -> the payment's <tbody>, kept across refreshes so that an
  // open refund form keeps what the operator typed.
  bodies: new Map(),
  // merchant_uid -> its latest view.
  views: new Map(),
  refreshing: null,
  nextId: 0,
};
