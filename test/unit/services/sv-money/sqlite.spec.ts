import { walletContract } from "./contract.ts";

walletContract("sqlite");
