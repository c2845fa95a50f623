/** How far each projection a process runs has got: what `/readyz` and the metrics report. */
export interface ProjectionStatus {
  readonly projection: string;
  readonly caughtUp: boolean;
  readonly lagEvents: number;
  readonly lagSeconds: number;
}

export interface ProjectionStatusSource {
  status(): readonly ProjectionStatus[];
}
