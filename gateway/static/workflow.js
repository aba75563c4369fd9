// The handling rules of alerting/workflow.py TRANSITIONS, mirrored so the detail page
// offers only the actions the alert's stage allows. The server stays the judge: if the
// two ever disagree, its {"error", "detail"} answer is shown.

const OPEN = ["pending", "acknowledged", "dispatched", "feedback", "verified"];
const ALL = [...OPEN, "closed"];

export const ACTIONS = {
  acknowledge: { from: ["pending"] },
  dispatch: { from: ["pending", "acknowledged", "dispatched"], assignee: true, regulator: true },
  feedback: { from: ["acknowledged", "dispatched"], comment: true },
  verify: { from: ["feedback"], regulator: true },
  reject: { from: ["feedback"], comment: true, regulator: true },
  close: { from: ["verified"], regulator: true },
  dismiss: { from: OPEN, comment: true, regulator: true },
  comment: { from: ALL, comment: true },
};

/** Action names allowed from `stage`; regulator-only ones are left out for others. */
export function actionsFor(stage, regulator) {
  return Object.entries(ACTIONS)
    .filter(([, rule]) => rule.from.includes(stage) && (regulator || !rule.regulator))
    .map(([name]) => name);
}
