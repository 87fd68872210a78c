// What the budgets still allow in this run: the planner's input from the budget ledger kept
// between runs (src/run/budget.ts). Pure: the room is a number of actions, consumed oldest
// offender first as the planner decides.

export interface RoomLeft {
  /** Actions the target's budget still allows; undefined: no budget. */
  target?: number | undefined;
  /** The same for each policy that has a budget of its own. */
  policies?: ReadonlyMap<string, number>;
}

export class BudgetRoom {
  private target: number;
  private readonly policies: Map<string, number>;

  constructor(room: RoomLeft | undefined) {
    this.target = room?.target ?? Infinity;
    this.policies = new Map(room?.policies ?? []);
  }

  /** Which budget, if any, has no room left for one more action of this policy. */
  over(policy: string): 'target' | 'policy' | undefined {
    const left = this.policies.get(policy);
    if (left !== undefined && left <= 0) return 'policy';
    if (this.target <= 0) return 'target';
    return undefined;
  }

  take(policy: string): void {
    this.target--;
    const left = this.policies.get(policy);
    if (left !== undefined) this.policies.set(policy, left - 1);
  }
}
