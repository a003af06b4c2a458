import { noticeContract } from "./contract.ts";

noticeContract("sqlite");
