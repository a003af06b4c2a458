import { useState } from "preact/hooks";
import { logIn } from "../api.ts";
import { Failure, useAction } from "../ui.tsx";

export function LoginPage() {
	const [login, setLogin] = useState("");
	const [password, setPassword] = useState("");
	const action = useAction();
	return (
		<main class="centered">
			<form
				class="login"
				onSubmit={e => {
					e.preventDefault();
					action.run(() => logIn(login, password));
				}}
			>
				<h1>edgehome console</h1>
				<label>
					Username, e-mail or phone
					<input name="login" autocomplete="username" required value={login} onInput={e => setLogin(e.currentTarget.value)} />
				</label>
				<label>
					Password
					<input name="password" type="password" autocomplete="current-password" required value={password} onInput={e => setPassword(e.currentTarget.value)} />
				</label>
				<button type="submit" disabled={action.busy}>
					Log in
				</button>
				<Failure error={action.error} />
			</form>
		</main>
	);
}
