use wyrmhole::Model;

#[derive(Model)]
struct TodoItem {
    id: i32,
    #[wyrm(updatable)]
    text: String,
}

fn main() {}
